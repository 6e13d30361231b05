"""ModelRef.from_folder: fine-tuning outputs (tailor_model.json) and bare base folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tailorml.errors import ModelUnavailableError
from tailorml.serve import ModelRef

from .conftest import TOPIC_LABELS, TinyModels


def test_base_folders_are_described_from_config(tiny: TinyModels) -> None:
    decoder = ModelRef.from_folder("d", tiny.decoder)
    assert (decoder.architecture, decoder.method, decoder.task) == ("decoder", "full", None)
    assert decoder.context_length == 2048  # max_position_embeddings of the tiny Llama
    encoder = ModelRef.from_folder("e", tiny.encoder)
    assert (encoder.architecture, encoder.context_length) == ("encoder", 512)


def test_manifest_of_a_full_classifier(tiny: TinyModels) -> None:
    ref = ModelRef.from_folder("ft:tiny:acme:sst2:1", tiny.classifier)
    assert ref.task == "classification"
    assert ref.labels == ("negative", "positive")
    assert ref.method == "full" and not ref.is_lora


def test_manifest_of_a_lora_adapter(tiny: TinyModels) -> None:
    ref = ModelRef.from_folder("ft:tiny:acme:chat:1", tiny.lora_a)
    assert ref.is_lora and ref.architecture == "decoder"
    assert ref.base_path == tiny.decoder.resolve()
    assert ref.context_length == 512
    cls = ModelRef.from_folder("ft:tiny:acme:news:1", tiny.lora_classifier)
    assert cls.labels == TOPIC_LABELS


def test_relative_base_path_is_read_against_the_model_folder(
    tiny: TinyModels, tmp_path: Path
) -> None:
    moved = tmp_path / "models" / "adapter"
    shutil.copytree(tiny.lora_a, moved)
    meta = json.loads((moved / "tailor_model.json").read_text())
    shutil.copytree(tiny.decoder, tmp_path / "models" / "base")
    meta["base_path"] = "../base"
    (moved / "tailor_model.json").write_text(json.dumps(meta))
    assert ModelRef.from_folder("m", moved).base_path == (tmp_path / "models" / "base").resolve()


def test_every_manifest_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = {"task": "chat", "method": "qlora", "architecture": "rnn", "labels": "yes"}
    (tmp_path / "tailor_model.json").write_text(json.dumps(bad))
    with pytest.raises(ModelUnavailableError) as err:
        ModelRef.from_folder("m", tmp_path)
    message = err.value.message
    assert "architecture" in message and "method" in message and "labels" in message


def test_missing_folder_and_lora_without_base_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        ModelRef.from_folder("m", tmp_path / "gone")
    with pytest.raises(ModelUnavailableError, match="neither"):
        ModelRef.from_folder("m", tmp_path)
    with pytest.raises(ModelUnavailableError, match="base_path"):
        ModelRef(key="m", path=tmp_path, architecture="decoder", method="lora")


def test_importing_serve_does_not_import_torch() -> None:
    import os
    import subprocess
    import sys

    import tailorml

    src = str(Path(tailorml.__file__).resolve().parents[1])
    env = os.environ | {"PYTHONPATH": src}
    code = (
        "import sys, tailorml.serve\n"
        "heavy = {'torch', 'transformers', 'peft'} & set(sys.modules)\n"
        "sys.exit(f'imported {heavy}' if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
