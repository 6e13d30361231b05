"""The /v1 inference routes and the database: no write lock for reads, none held during inference,
and model resolution cached until the model changes. On tiny LoRA adapters of a tiny Llama."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tailorml.platform.auth import get_tenant
from tailorml.platform.db.engine import read_scope, session_scope
from tailorml.platform.db.models import Model
from tests.platform.api.test_errors import error

pytest.importorskip("torch", reason="inference needs the ml extra (torch)")

from tests.serve.conftest import lora_adapter, manifest, spread_weights  # noqa: E402

PROMPT = "Give three tips for staying healthy."


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny Llama with wide weights (varied greedy text) and two LoRA adapters on it."""
    from tailorml.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("inference_models")
    base = build_tiny_model("decoder", root / "tiny-llama")
    spread_weights(base)
    out = {"base": base}
    for i, name in enumerate(("a", "b"), start=1):
        folder = lora_adapter(base, root / f"lora_{name}", seed=i, task_type="CAUSAL_LM")
        manifest(folder, task="chat", method="lora", base_path=str(base), architecture="decoder")
        out[name] = folder
    return out


def register(client, tenant: str, suffix: str, path: Path) -> str:  # type: ignore[no-untyped-def]
    """A fine-tuned model row for ``tenant``, as a finished job writes it."""
    state = client.app.state.tailor
    with session_scope(state.sessions) as s:
        tenant_id = get_tenant(s, name_or_id=tenant).id
        model_id = f"ft:tiny-llama:{tenant}:{suffix}:{len(suffix):08d}"
        s.add(
            Model(id=model_id, tenant_id=tenant_id, base="tiny-llama", task="chat", path=str(path))
        )
    return model_id


def sqlite_file(settings) -> Path:  # type: ignore[no-untyped-def]
    url = settings.resolved_database_url
    if not url.startswith("sqlite:///"):
        pytest.skip("SQLite's locks only")
    return Path(url.removeprefix("sqlite:///"))


def chat(client, headers, model: str, **extra):  # type: ignore[no-untyped-def]
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8}
    return client.post(
        "/v1/chat/completions", headers=headers, json=body | {"temperature": 0, **extra}
    )


def test_requests_go_on_while_a_writer_holds_the_database(client, acme, settings, adapters) -> None:  # type: ignore[no-untyped-def]
    model = register(client, "acme", "a", adapters["a"])
    expected = chat(client, acme, model).json()["choices"][0]["message"]["content"]
    # A writer (a worker claiming a job, a job saving its model) holds the write lock. The
    # key check and the model lookup are reads, so requests neither wait for it nor fail.
    writer = sqlite3.connect(sqlite_file(settings), timeout=0, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        answer = chat(client, acme, model)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == expected
        streamed = chat(client, acme, model, stream=True)
        assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_read_sessions_take_no_lock_and_refuse_writes(client, settings) -> None:  # type: ignore[no-untyped-def]
    state = client.app.state.tailor
    with read_scope(state.read_sessions) as s:
        s.get(Model, "ft:none")  # a read transaction is open now
        if settings.resolved_database_url.startswith("sqlite"):
            other = sqlite3.connect(sqlite_file(settings), timeout=0, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # would raise "database is locked" under a writer
            other.execute("ROLLBACK")
            other.close()
        s.add(Model(id="ft:x", tenant_id="t", base="b", task="chat", path="/nowhere"))
        with pytest.raises(RuntimeError, match="read-only session"):
            s.flush()


def test_resolution_is_cached_until_the_model_changes(
    client, acme, globex, adapters, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import shutil

    state = client.app.state.tailor
    folder = tmp_path / "lora"
    shutil.copytree(adapters["a"], folder)
    model = register(client, "acme", "cached", folder)

    def resolve(tenant: str):  # type: ignore[no-untyped-def]
        with read_scope(state.read_sessions) as s:
            tenant_id = get_tenant(s, name_or_id=tenant).id
            return state.models.resolve(s, tenant_id=tenant_id, model_id=model)

    first = resolve("acme")
    assert resolve("acme") is first  # no second read of the manifest
    # A job that writes the model again (a resumed job writes the same folder) is seen.
    meta = json.loads((folder / "tailor_model.json").read_text())
    (folder / "tailor_model.json").write_text(json.dumps(meta | {"context_length": 256}))
    again = resolve("acme")
    assert again is not first and again.context_length == 256
    # Another tenant never gets it, cached or not; a deleted model is gone at once.
    assert error(chat(client, globex, model), 404)["code"] == "model_not_found"
    assert chat(client, acme, model).status_code == 200
    assert client.delete(f"/v1/models/{model}", headers=acme).status_code == 200
    assert error(chat(client, acme, model), 404)["code"] == "model_not_found"


def test_no_transaction_is_open_while_a_model_generates(client, acme, settings, adapters) -> None:  # type: ignore[no-untyped-def]
    from tailorml.serve import Engine
    from tailorml.serve.torch_backend import TorchBackend, TorchBase

    db = sqlite_file(settings)
    seen: list[int] = []

    def probe() -> None:
        """Take the write lock and checkpoint the whole log, waiting for nobody."""
        conn = sqlite3.connect(db, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")  # "database is locked" if a writer is open
            conn.execute("ROLLBACK")
            # busy is 1 while any reader still holds a snapshot of the log
            seen.append(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
        finally:
            conn.close()

    class ProbingBase(TorchBase):
        def generate(self, request):  # type: ignore[no-untyped-def]
            for i, step in enumerate(super().generate(request)):
                if i == 1:  # mid-answer: the request is inside inference now
                    probe()
                yield step

    class ProbingBackend(TorchBackend):
        def load(self, spec, config):  # type: ignore[no-untyped-def]
            return ProbingBase(super().load(spec, config).weights)

    client.app.state.tailor._serving = Engine(backend=ProbingBackend())
    model = register(client, "acme", "probed", adapters["b"])
    assert chat(client, acme, model).status_code == 200
    streamed = chat(client, acme, model, stream=True)
    assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    assert chat(client, acme, "ft:tiny-llama:acme:none:00000000").status_code == 404
    assert seen == [0, 0]


def test_a_tenant_over_its_concurrency_gets_a_fast_429_and_others_do_not(
    client, acme, globex, adapters
) -> None:  # type: ignore[no-untyped-def]
    state = client.app.state.tailor
    model = register(client, "acme", "busy", adapters["a"])
    other = register(client, "globex", "calm", adapters["b"])
    assert chat(client, acme, model).status_code == 200  # loaded
    with read_scope(state.read_sessions) as s:
        acme_id = get_tenant(s, name_or_id="acme").id
    admission = state.serving.admission
    admission.set_tenant_limit(acme_id, 1)
    held = admission.enter(adapters["base"].name, acme_id)  # acme's one request in flight
    try:
        refused = chat(client, acme, model)
        assert error(refused, 429)["code"] == "rate_limit_exceeded"
        assert int(refused.headers["retry-after"]) >= 1
        assert "1 requests in flight" in refused.json()["error"]["message"]
        assert chat(client, globex, other).status_code == 200
    finally:
        held.release()
    assert chat(client, acme, model).status_code == 200


def test_an_operator_bounds_a_tenants_requests_in_flight(client, acme, adapters) -> None:  # type: ignore[no-untyped-def]
    state = client.app.state.tailor
    model = register(client, "acme", "bounded", adapters["a"])
    assert chat(client, acme, model).status_code == 200  # loaded, and the default allows it
    admin = {"Authorization": "Bearer admin-test-key"}
    set_ = client.post("/admin/tenants/acme/quotas", headers=admin,
                       json={"metric": "concurrent_requests", "limit": 1, "period": "total"})  # fmt: skip
    assert set_.status_code == 200, set_.text
    bad = client.post("/admin/tenants/acme/quotas", headers=admin,
                      json={"metric": "concurrent_requests", "limit": 2, "period": "day"})  # fmt: skip
    assert error(bad, 400)["param"] == "period"
    with read_scope(state.read_sessions) as s:
        acme_id = get_tenant(s, name_or_id="acme").id
    assert state.serving.admission.tenant_limit(acme_id) == 1
    held = state.serving.admission.enter(adapters["base"].name, acme_id)
    try:
        assert error(chat(client, acme, model), 429)["code"] == "rate_limit_exceeded"
    finally:
        held.release()
    assert chat(client, acme, model).status_code == 200
    cleared = client.delete("/admin/tenants/acme/quotas?metric=concurrent_requests", headers=admin)
    assert cleared.status_code == 200
    assert state.serving.admission.tenant_limit(acme_id) == 64
