"""32 concurrent requests across four fine-tuned LoRA adapters on one base, against a live
``tailor serve`` (with its worker) on the default SQLite database: every answer succeeds and
equals the one the same request gets alone, also while another process holds the database's
write lock. This once failed with HTTP 500 "database is locked" for 14 of 32 requests."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="serving needs the ml extra (torch)")

from tests.serve.conftest import lora_adapter, manifest, spread_weights  # noqa: E402

N_ADAPTERS = 4
CONCURRENCY = 32
PROMPT = "Give three tips for staying healthy."


def build_models(root: Path) -> tuple[Path, list[Path]]:
    from tailorml.models.tiny import build_tiny_model

    base = build_tiny_model("decoder", root / "tiny-llama")
    spread_weights(base)  # varied greedy text, so a mixed-up adapter would show
    adapters = []
    for i in range(N_ADAPTERS):
        folder = lora_adapter(base, root / f"lora_{i}", seed=10 + i, task_type="CAUSAL_LM")
        manifest(folder, task="chat", method="lora", base_path=str(base), architecture="decoder")
        adapters.append(folder)
    return base, adapters


def register(db: Path, tenant: str, adapters: list[Path]) -> list[str]:
    """Model rows as finished fine-tuning jobs write them."""
    from tailorml.platform.auth import get_tenant
    from tailorml.platform.db.engine import make_engine, make_sessionmaker, session_scope
    from tailorml.platform.db.models import Model

    engine = make_engine(f"sqlite:///{db}")
    ids = [f"ft:tiny-llama:{tenant}:a{i}:{i:08d}" for i in range(len(adapters))]
    with session_scope(make_sessionmaker(engine)) as s:
        tenant_id = get_tenant(s, name_or_id=tenant).id
        for model_id, folder in zip(ids, adapters, strict=True):
            s.add(
                Model(id=model_id, tenant_id=tenant_id, base="tiny-llama", task="chat",
                      path=str(folder))
            )  # fmt: skip
    engine.dispose()
    return ids


def answer(client, model: str, kind: int) -> str:  # type: ignore[no-untyped-def]
    """One request of four kinds: chat or completion, whole or streamed."""
    options = {"model": model, "max_tokens": 24, "temperature": 0}
    messages = [{"role": "user", "content": PROMPT}]
    if kind == 0:
        return (
            client.chat.completions.create(messages=messages, **options).choices[0].message.content
        )
    if kind == 1:
        chunks = client.chat.completions.create(messages=messages, stream=True, **options)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    if kind == 2:
        return client.completions.create(prompt=PROMPT, **options).choices[0].text
    chunks = client.completions.create(prompt=PROMPT, stream=True, **options)
    return "".join(c.choices[0].text for c in chunks if c.choices)


def test_32_concurrent_requests_across_adapters(live_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, adapters = build_models(tmp_path / "models")
    server = live_server()
    client = server.client(server.create_tenant("acme"))
    db = server.data_dir / "tailor.db"
    models = register(db, "acme", adapters)

    # Alone, one at a time: what each (model, chat or completion) answers.
    expected = {(m, kind): answer(client, m, kind) for m in models for kind in (0, 2)}
    assert len({expected[m, 0] for m in models}) > 1  # the adapters really differ
    jobs = [(models[i % N_ADAPTERS], i // N_ADAPTERS % 4) for i in range(CONCURRENCY)]

    def burst() -> None:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            got = list(pool.map(lambda job: answer(client, *job), jobs))
        for (model, kind), text in zip(jobs, got, strict=True):
            assert text == expected[model, kind // 2 * 2], (model, kind)

    burst()
    # Again while another process holds the write lock the whole time: key checks and model
    # lookups are reads and inference holds no transaction, so nothing waits for it.
    writer = sqlite3.connect(db, timeout=0, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        burst()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
