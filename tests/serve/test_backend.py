"""The backend contract on the torch backend: a request object in, a stream of steps out, the
adapter per request, stop ids ended by the scheduler, and where and how weights are placed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tailorml.errors import InvalidRequestError
from tailorml.serve import Engine, ModelRef
from tailorml.serve.backend import GenerationRequest, LoadConfig, SamplingParams
from tailorml.serve.bases import adapter_request, base_spec, resolve_dtype
from tailorml.serve.torch_backend import TorchBackend, TorchBase

from .conftest import TinyModels, questions


def load(tiny: TinyModels, **config: object) -> TorchBase:
    return TorchBackend().load(
        base_spec(ModelRef.from_folder("d", tiny.decoder)), LoadConfig(**config)
    )  # type: ignore[arg-type]


def request(base: TorchBase, prompt: str, adapter=None, **params: object) -> GenerationRequest:  # type: ignore[no-untyped-def]
    ids = tuple(base.tokenizer(adapter).encode(prompt, special=True))
    sampling = SamplingParams(**{"max_tokens": 10, "temperature": 0.0} | params)  # type: ignore[arg-type]
    return GenerationRequest("r", ids, sampling, adapter)


def test_auto_dtype_is_fp32_on_cpu_and_half_on_gpu() -> None:
    assert resolve_dtype("auto", "cpu", "bfloat16") == "float32"  # never bf16 on a CPU by default
    assert resolve_dtype("auto", "cpu", None) == "float32"
    assert resolve_dtype("auto", "cuda:0", "bfloat16") == "bfloat16"
    assert resolve_dtype("auto", "cuda", "float32") == "float16"
    assert resolve_dtype("bfloat16", "cpu", None) == "bfloat16"  # the operator's explicit choice


def test_load_config_reports_every_problem_at_once() -> None:
    with pytest.raises(InvalidRequestError) as err:
        LoadConfig(device="", dtype="fp8", max_adapters=0)
    assert all(word in err.value.message for word in ("dtype", "device", "max_adapters"))


def test_the_spec_carries_the_checkpoints_dtype_and_quantization(
    tiny: TinyModels, tmp_path: Path
) -> None:
    folder = tmp_path / "quantized"
    shutil.copytree(tiny.decoder, folder)
    config = json.loads((folder / "config.json").read_text())
    config |= {"dtype": "bfloat16", "quantization_config": {"quant_method": "gptq", "bits": 4}}
    (folder / "config.json").write_text(json.dumps(config))
    spec = base_spec(ModelRef.from_folder("q", folder))
    assert (spec.dtype, spec.quantization) == ("bfloat16", "gptq")
    # An adapter runs on its base's spec.
    lora = ModelRef.from_folder("ft:a", tiny.lora_a)
    assert base_spec(lora).path == str(tiny.decoder.resolve())


def test_a_cpu_base_loads_in_fp32(tiny: TinyModels) -> None:
    import torch

    base = load(tiny)
    assert base.weights.device == "cpu"
    assert {p.dtype for p in base.weights.model.parameters()} == {torch.float32}


def test_steps_stream_one_request_to_its_end(tiny: TinyModels, engine: Engine) -> None:
    prompt = questions(3)[2]
    base = load(tiny)
    steps = list(base.generate(request(base, prompt)))
    assert [s.finish_reason for s in steps] == [None] * 9 + ["length"]
    tokens = [t for s in steps for t in s.token_ids]
    text = engine.complete(
        ModelRef.from_folder("d", tiny.decoder), prompt, max_tokens=10, temperature=0
    ).text
    assert base.tokenizer(None).decode(tokens) == text
    # A stop id ends the sequence in the scheduler: that token is the last, flagged as the stop.
    stop = tokens[3]
    first = tokens.index(stop)
    stopped = list(base.generate(request(base, prompt, stop_token_ids=frozenset({stop}))))
    assert [t for s in stopped for t in s.token_ids] == tokens[: first + 1]
    assert (stopped[-1].finish_reason, stopped[-1].stop_token_id) == ("stop", stop)


def test_the_adapter_is_a_per_request_attribute(tiny: TinyModels) -> None:
    base = load(tiny)
    prompt = questions(2)[1]
    adapters = [None, adapter_request(ModelRef.from_folder("ft:a", tiny.lora_a)),
                adapter_request(ModelRef.from_folder("ft:b", tiny.lora_b))]  # fmt: skip
    alone = [
        [t for s in base.generate(request(base, prompt, a)) for t in s.token_ids] for a in adapters
    ]
    assert len({tuple(t) for t in alone}) == 3
    # Three streams on one base, stepped in turn: each keeps its own adapter.
    streams = [base.generate(request(base, prompt, a)) for a in adapters]
    got: list[list[int]] = [[], [], []]
    for _ in range(10):
        for i, stream in enumerate(streams):
            got[i].extend(next(stream).token_ids)
    assert got == alone


def test_closing_a_stream_ends_the_request(tiny: TinyModels) -> None:
    base = load(tiny)
    stream = base.generate(request(base, questions(1)[0], max_tokens=50))
    next(stream)
    stream.close()  # type: ignore[attr-defined]
    assert list(stream) == []


def test_the_engine_takes_a_backend_object(tiny: TinyModels) -> None:
    engine = Engine(backend=TorchBackend())
    out = engine.complete(
        ModelRef.from_folder("d", tiny.decoder), "Hello", max_tokens=3, temperature=0
    )
    assert out.completion_tokens == 3 and engine.config.dtype == "auto"
