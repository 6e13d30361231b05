"""Training under torchrun (DDP on gloo): two CPU processes compute the run of one process
with the same global batch (the loss curve, the validation losses, the weights), with
uneven shares of a batch; a resumed two-process run continues exactly; SIGTERM to torchrun
stops every rank as "cancelled".

The tiny models here train without dropout: with dropout each process draws its own masks,
so the runs agree in distribution only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tailorml.train.distributed import share
from tailorml.train.loop import train
from tailorml.train.run_spec import RunSpec, write_run_spec

from .conftest import EventLog, glaive_chats, spam_records
from .test_loop import chat_spec, cls_spec
from .test_run import _alive, _env, _jsonl

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="torchrun's process tests read /proc"
)

TOLERANCE = 1e-5


def _without_dropout(src: Path, dst: Path, model_cache: Path):  # type: ignore[no-untyped-def]
    from tailorml.models.sources import materialize

    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "attention_dropout"):
        config[key] = 0.0
    (dst / "config.json").write_text(json.dumps(config))
    return materialize(str(dst), model_cache)


@pytest.fixture(scope="module")
def encoder(tiny_models, tmp_path_factory, model_cache):  # type: ignore[no-untyped-def]
    return _without_dropout(
        tiny_models["encoder"], tmp_path_factory.mktemp("enc") / "bert", model_cache
    )


@pytest.fixture(scope="module")
def decoder(tiny_models, tmp_path_factory, model_cache):  # type: ignore[no-untyped-def]
    return _without_dropout(
        tiny_models["decoder"], tmp_path_factory.mktemp("dec") / "llama", model_cache
    )


def torchrun(spec: RunSpec, folder: Path, processes: int = 2) -> subprocess.Popen[bytes]:
    """``python -m tailorml.train.run`` under torchrun; events on stdout, the rest in run.log."""
    path = write_run_spec(spec, folder / "run_spec.json")
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={processes}", "-m", "tailorml.train.run", str(path)],
        stdout=subprocess.PIPE,
        stderr=open(folder / "run.log", "wb"),  # noqa: SIM115
        env={**_env(), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def finish(proc: subprocess.Popen[bytes], folder: Path) -> list[dict]:
    assert proc.stdout is not None
    lines = proc.stdout.read().splitlines()
    code = proc.wait(timeout=240)
    events = [json.loads(line) for line in lines]  # nothing but events, from rank 0 alone
    assert code == 0 and events[-1]["type"] == "result", (folder / "run.log").read_text()[-3000:]
    return events


def _spec(folder: Path, base, train_records, valid_records, **train) -> RunSpec:  # type: ignore[no-untyped-def]
    return RunSpec(
        train=train.pop("spec")(report=False, fidelity_check=False, **train),
        base=base,
        training_file=_jsonl(folder / "train.jsonl", train_records),
        validation_file=_jsonl(folder / "valid.jsonl", valid_records),
        out_dir=folder / "out",
    )


def _curve(events: list[dict]) -> list[tuple]:
    return [
        (m["step"], m["train_loss"], m["valid_loss"], m["trained_tokens"])
        for m in events
        if m["type"] == "metrics"
    ]


def assert_same_curve(one: list[dict], two: list[dict]) -> None:
    a, b = _curve(one), _curve(two)
    assert [s[0] for s in a] == [s[0] for s in b] and len(a) > 2
    assert any(s[2] is not None for s in a[1:])  # validated during training, not only at 0
    for x, y in zip(a, b, strict=True):
        assert x[3] == y[3]  # trained tokens: the same examples, every one once
        for p, q in zip(x[1:3], y[1:3], strict=True):
            assert (p is None) == (q is None)
            if p is not None:
                assert abs(p - q) < TOLERANCE, (x, y)


def assert_same_weights(a: Path, b: Path, atol: float = 1e-5) -> None:
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys() and wa
    for name, tensor in wa.items():
        torch.testing.assert_close(tensor, wb[name], atol=atol, rtol=1e-4, msg=name)


def test_share_splits_a_batch_into_nearly_equal_parts() -> None:
    items = list(range(7))
    parts = [share(items, r, 3) for r in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]
    assert [share([9], r, 2) for r in range(2)] == [[9], []]


@pytest.fixture(scope="module")
def classifier_runs(encoder, tmp_path_factory):  # type: ignore[no-untyped-def]
    """One process in-process and two under torchrun, on 22 e-mails at batch 5 (shares of 3
    and 2; the epoch's last batch of 2 is one each): 2 epochs of 5 steps."""
    folder = tmp_path_factory.mktemp("cls")
    settings = dict(spec=cls_spec, n_epochs=2, batch_size=5, eval_every=2, checkpoint_every=2)
    spec = _spec(folder, encoder, spam_records("train", 22), spam_records("dev", 9), **settings)
    proc = torchrun(spec, folder)  # the one-process run below trains meanwhile
    one = EventLog()
    train(
        spec.train, encoder, spam_records("train", 22), spam_records("dev", 9),
        folder / "one", on_event=one,
    )  # fmt: skip
    return spec, folder, one.events, finish(proc, folder)


def test_two_processes_train_the_classifier_of_one(classifier_runs) -> None:  # type: ignore[no-untyped-def]
    spec, folder, one, two = classifier_runs
    assert_same_curve(one, two)
    assert any("split over 2 processes (2 or 3 each" in e.get("message", "") for e in two)
    assert_same_weights(
        folder / "one/model/model.safetensors", folder / "out/model/model.safetensors"
    )
    # The checkpoints hold every rank's RNG state, for an exact resume of the same run.
    rng = torch.load(folder / "out/checkpoints/step-8/rng_state.pt", weights_only=True)
    assert len(rng["ranks"]) == 2


def test_a_two_process_run_resumes_exactly(classifier_runs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec, folder, _, uninterrupted = classifier_runs
    resumed = shutil.copytree(folder / "out/checkpoints/step-6", tmp_path / "step-6")
    again = RunSpec(**{**spec.__dict__, "out_dir": tmp_path / "out", "resume_from": resumed})
    events = finish(torchrun(again, tmp_path), tmp_path)
    assert any("Resumed from step-6 at step 6 of 10" in e.get("message", "") for e in events)
    tail = [e for e in uninterrupted if e["type"] == "metrics" and e["step"] > 6]
    assert_same_curve(tail, events)
    assert _curve(tail) == _curve(events)  # same processes, same arithmetic: exact
    assert_same_weights(
        folder / "out/checkpoints/step-8/model.safetensors",
        tmp_path / "out/checkpoints/step-8/model.safetensors",
        atol=0.0,
    )


def test_two_processes_train_lora_chat_with_token_weighted_loss(decoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Batch 3 over 2 processes with 2 batches accumulated: each process's share of a step
    holds other numbers of trained tokens, which only an exact weighting averages right."""
    chats = glaive_chats(14, max_chars=400)
    spec = _spec(
        tmp_path, decoder, chats[:11], chats[11:], spec=chat_spec, n_epochs=2, batch_size=3,
        gradient_accumulation_steps=2, lora_dropout=0.0, eval_every=1,
    )  # fmt: skip
    proc = torchrun(spec, tmp_path)
    one = EventLog()
    train(spec.train, decoder, chats[:11], chats[11:], tmp_path / "one", on_event=one)
    two = finish(proc, tmp_path)
    assert_same_curve(one.events, two)
    assert_same_weights(
        tmp_path / "one/model/adapter_model.safetensors",
        tmp_path / "out/model/adapter_model.safetensors",
    )


def _ranks(spec_path: Path) -> list[int]:
    """Live processes whose command line names ``spec_path`` (torchrun and its ranks)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and proc.name != str(os.getpid()):
            try:
                args = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(spec_path).encode() in args and _alive(int(proc.name)):
                found.append(int(proc.name))
    return found


def test_sigterm_to_torchrun_cancels_every_rank(encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = _spec(
        tmp_path, encoder, spam_records("train", 24), spam_records("dev", 4), spec=cls_spec,
        n_epochs=200, checkpoint_every=2,
    )  # fmt: skip
    proc = torchrun(spec, tmp_path)
    assert proc.stdout is not None
    deadline = time.time() + 120
    for line in proc.stdout:
        event = json.loads(line)
        if event["type"] == "metrics" and event["step"] >= 3:
            break
        assert time.time() < deadline, (tmp_path / "run.log").read_text()[-3000:]
    assert len(_ranks(tmp_path / "run_spec.json")) == 3  # torchrun and two ranks
    proc.send_signal(signal.SIGTERM)
    rest = [json.loads(line) for line in proc.stdout.read().splitlines()]
    proc.wait(timeout=60)
    assert rest[-1]["type"] == "cancelled", rest[-3:]
    assert "cancelled before step" in rest[-1]["message"]
    assert not _ranks(tmp_path / "run_spec.json")
    assert (tmp_path / "out/checkpoints").is_dir() and not (tmp_path / "out/model").exists()
