"""Metering and quotas: every request and job counted exactly (in memory, written once a
second, never a write per request), /v1/usage in OpenAI's usage shape, storage, hard quotas
(429 insufficient_quota) and token rate limits through the real API, the operator's report,
admin routes and CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, select
from typer.testing import CliRunner

from tailorml.platform.auth import get_tenant
from tailorml.platform.db.engine import (
    make_engine,
    make_read_sessionmaker,
    make_sessionmaker,
    migrate,
    session_scope,
)
from tailorml.platform.db.models import Base, Job, JobEvent, Model, Tenant, UsageBucket
from tailorml.platform.usage import JobMeter, UsageRecorder, minute_of
from tests.platform.api.test_errors import error
from tests.platform.test_files import upload

ADMIN = {"Authorization": "Bearer admin-test-key"}
PROMPT = "Give three tips for staying healthy."


def quota(client: TestClient, tenant: str, metric: str, limit: float, **extra: Any) -> Any:
    return client.post(
        f"/admin/tenants/{tenant}/quotas",
        headers=ADMIN,
        json={"metric": metric, "limit": limit, **extra},
    )


def usage(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    params.setdefault("start_time", int(time.time()) - 3600)
    res = client.get("/v1/usage", headers=headers, params=params)
    assert res.status_code == 200, res.text
    return res.json()


def results(page: dict[str, Any], obj: str = "organization.usage.completions.result") -> list[dict]:
    return [r for b in page["data"] for r in b["results"] if r["object"] == obj]


def sqlite_file(settings) -> Path:  # type: ignore[no-untyped-def]
    url = settings.resolved_database_url
    if not url.startswith("sqlite:///"):
        pytest.skip("SQLite's locks only")
    return Path(url.removeprefix("sqlite:///"))


# -- through the real inference routes, on a tiny Llama with a LoRA adapter ----------------


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="inference needs the ml extra (torch)")
    from tailorml.models.tiny import build_tiny_model
    from tests.serve.conftest import lora_adapter, manifest

    root = tmp_path_factory.mktemp("usage_models")
    base = build_tiny_model("decoder", root / "tiny-llama")
    folder = lora_adapter(base, root / "lora", seed=1, task_type="CAUSAL_LM")
    manifest(folder, task="chat", method="lora", base_path=str(base), architecture="decoder")
    return folder


def register(client: TestClient, tenant: str, path: Path) -> str:
    state = client.app.state.tailor
    with session_scope(state.sessions) as s:
        tenant_id = get_tenant(s, name_or_id=tenant).id
        model_id = f"ft:tiny-llama:{tenant}:usage:00000001"
        s.add(
            Model(id=model_id, tenant_id=tenant_id, base="tiny-llama", task="chat", path=str(path))
        )
    return model_id


def chat(client: TestClient, headers: dict[str, str], model: str, **extra: Any) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 4}
    return client.post(
        "/v1/chat/completions", headers=headers, json=body | {"temperature": 0, **extra}
    )


def streamed_usage(res: Any) -> dict[str, int]:
    chunks = [json.loads(x[6:]) for x in res.text.split("\n\n") if x.startswith("data: {")]
    return chunks[-1]["usage"]


def test_every_request_is_counted_exactly(client, acme, settings, adapter) -> None:  # type: ignore[no-untyped-def]
    model = register(client, "acme", adapter)
    state = client.app.state.tailor
    sqlite = settings.resolved_database_url.startswith("sqlite")
    writer = None
    if sqlite:  # a writer holds SQLite's lock: requests must not need it to be counted
        writer = sqlite3.connect(sqlite_file(settings), timeout=0, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
    try:
        seen = []
        for _ in range(3):
            res = chat(client, acme, model)
            assert res.status_code == 200, res.text
            seen.append(res.json()["usage"])
        for _ in range(2):
            res = chat(client, acme, model, stream=True, stream_options={"include_usage": True})
            assert res.status_code == 200, res.text
            seen.append(streamed_usage(res))
        res = client.post(
            "/v1/completions",
            headers=acme,
            json={"model": model, "prompt": PROMPT, "max_tokens": 3},
        )
        assert res.status_code == 200, res.text
        seen.append(res.json()["usage"])
    finally:
        if writer is not None:
            writer.execute("ROLLBACK")
            writer.close()
    state.usage.flush()
    page = usage(client, acme, bucket_width="1h", group_by="model")
    assert page["object"] == "page" and all(b["object"] == "bucket" for b in page["data"])
    (row,) = results(page)
    assert row["model"] == model and row["num_model_requests"] == 6
    assert row["input_tokens"] == sum(u["prompt_tokens"] for u in seen)
    assert row["output_tokens"] == sum(u["completion_tokens"] for u in seen)
    by_minute = results(usage(client, acme, bucket_width="1m", limit=120))
    assert sum(r["num_model_requests"] for r in by_minute) == 6
    assert all(r["model"] is None for r in by_minute)  # not grouped


def test_hard_and_token_rate_quotas_through_the_api(client, acme, globex, adapter) -> None:  # type: ignore[no-untyped-def]
    model = register(client, "acme", adapter)
    state = client.app.state.tailor
    assert quota(client, "acme", "tokens", 5, period="day").status_code == 200
    first = chat(client, acme, model)
    assert first.status_code == 200  # 0 of 5 used when it came
    # Its tokens are counted in memory before any flush, and the next request is refused.
    refused = chat(client, acme, model)
    body = error(refused, 429)
    assert body["type"] == "insufficient_quota" and body["code"] == "insufficient_quota"
    assert "retry-after" not in refused.headers
    used = first.json()["usage"]["total_tokens"]
    assert (
        f"{used} used" in body["message"]
        and "tailor admin quota set acme tokens" in body["message"]
    )
    # Cleared: a token rate limit instead, charged when the usage is written.
    assert client.delete("/admin/tenants/acme/quotas", headers=ADMIN).json()["deleted"] == 1
    assert quota(client, "acme", "tokens", 10, period="minute", kind="rate").status_code == 200
    ok = chat(client, acme, model)
    assert ok.status_code == 200 and ok.headers["x-ratelimit-limit-tokens"] == "10"
    assert ok.json()["usage"]["total_tokens"] > 10
    state.usage.flush()  # charges the tokens to the shared bucket
    limited = chat(client, acme, model)
    body = error(limited, 429)
    assert body["code"] == "rate_limit_exceeded" and body["type"] == "tokens"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-ratelimit-remaining-tokens"] == "0"
    # The other tenant is untouched.
    register(client, "globex", adapter)
    assert chat(client, globex, "ft:tiny-llama:globex:usage:00000001").status_code == 200


# -- the recorder -----------------------------------------------------------------------


@pytest.fixture
def db(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    migrate(engine)
    with session_scope(make_sessionmaker(engine)) as s:
        s.add_all([Tenant(id="tn_a", name="acme"), Tenant(id="tn_b", name="globex")])
    yield engine
    engine.dispose()


def buckets(engine, tenant_id: str = "tn_a") -> list[UsageBucket]:  # type: ignore[no-untyped-def]
    with session_scope(make_sessionmaker(engine)) as s:
        rows = list(s.scalars(select(UsageBucket).where(UsageBucket.tenant_id == tenant_id)))
        s.expunge_all()
        return rows


def recorder(engine, tmp_path: Path, **kw: Any) -> UsageRecorder:  # type: ignore[no-untyped-def]
    return UsageRecorder(
        make_sessionmaker(engine), make_read_sessionmaker(engine), jobs_dir=tmp_path, **kw
    )


def test_requests_are_written_together_not_one_by_one(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rec = recorder(db, tmp_path, flush_seconds=0.2)
    writes: list[str] = []

    @event.listens_for(db, "before_cursor_execute")
    def count(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO usage_buckets"):
            writes.append(statement)

    def send(n: int) -> None:
        for _ in range(n):
            rec.record_request("tn_a", "m1", prompt_tokens=3, completion_tokens=2)

    threads = [threading.Thread(target=send, args=(50,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.time() + 10
    while sum(b.requests for b in buckets(db)) < 200:
        assert time.time() < deadline, "the flush thread did not write within 10 s"
        time.sleep(0.05)
    rec.close()
    rows = buckets(db)
    assert sum(b.requests for b in rows) == 200
    assert (
        sum(b.prompt_tokens for b in rows) == 600 and sum(b.completion_tokens for b in rows) == 400
    )
    assert 1 <= len(writes) <= 5  # 200 requests, one statement per flush, a few flushes
    # After a shutdown (an app whose lifespan ended and starts again) the thread comes back.
    rec.record_request("tn_a", "m1", prompt_tokens=1)
    deadline = time.time() + 10
    while sum(b.requests for b in buckets(db)) < 201:
        assert time.time() < deadline, "no flush after the recorder was started again"
        time.sleep(0.05)
    rec.close()


def test_a_failed_flush_keeps_every_count(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rec = recorder(db, tmp_path)
    (tmp_path / "not-a-dir").write_text("")
    away = create_engine(f"sqlite:///{tmp_path / 'not-a-dir' / 'db.sqlite'}")
    rec.sessions = make_sessionmaker(away)  # the database is away
    rec.record_request("tn_a", "m1", prompt_tokens=7)
    assert rec.flush() == 0
    rec.record_request("tn_a", "m1", prompt_tokens=5)
    assert rec.pending("tn_a", since=0).requests == 2
    rec.sessions = make_sessionmaker(db)  # back
    assert rec.flush() == 1
    (row,) = buckets(db)
    assert (row.requests, row.prompt_tokens) == (2, 12)
    assert rec.pending("tn_a", since=0).requests == 0
    away.dispose()


def test_two_processes_add_to_the_same_buckets(db, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = make_engine(db_url)
    at = time.time()
    first, second = recorder(db, tmp_path), recorder(other, tmp_path)
    for rec, n in ((first, 3), (second, 4)):
        for _ in range(n):
            rec.record_request("tn_a", "m1", prompt_tokens=1, completion_tokens=1, at=at)
        rec.record_request("tn_b", "m2", prompt_tokens=10, at=at)
    first.flush()
    second.flush()
    first.record_request("tn_a", "m1", prompt_tokens=1, at=at)
    first.flush()
    (row,) = buckets(db)
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (8, 8, 7)
    assert row.minute == minute_of(at)
    assert [b.requests for b in buckets(db, "tn_b")] == [2]
    other.dispose()


def test_a_job_meter_writes_compute_and_the_final_tokens_once(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sessions = make_sessionmaker(db)
    with session_scope(sessions) as s:
        s.add(
            Job(
                id="job-1",
                kind="fine_tune",
                tenant_id="tn_a",
                status="running",
                spec={"model": "minilm-l6"},
            )
        )
        s.add(
            JobEvent(
                job_id="job-1",
                message="Step 3/9",
                type="metrics",
                data={"step": 3, "trained_tokens": 77},
            )
        )
    (tmp_path / "job-1").mkdir()
    (tmp_path / "job-1" / "checkpoint.bin").write_bytes(b"x" * 1000)
    clock = [100.0]
    kw = dict(
        job_id="job-1",
        tenant_id="tn_a",
        job_kind="fine_tune",
        spec={"model": "minilm-l6"},
        jobs_dir=tmp_path,
        every=10.0,
        clock=lambda: clock[0],
    )
    meter = JobMeter(sessions, **kw)  # type: ignore[arg-type]
    clock[0] = 105.0
    meter.tick()  # not ten seconds yet: nothing written
    assert buckets(db) == []
    clock[0] = 112.5
    meter.tick()
    clock[0] = 113.0
    meter.close()  # the attempt ends while the job is still running (handed back): no tokens
    rows = [b for b in buckets(db) if b.kind == "training"]
    assert sum(b.compute_seconds for b in rows) == pytest.approx(13.0)
    assert sum(b.training_tokens for b in rows) == 0 and rows[0].model == "minilm-l6"
    with session_scope(sessions) as s:
        s.get(Job, "job-1").status = "failed"
    clock[0] = 120.0
    second = JobMeter(sessions, **kw)  # type: ignore[arg-type]
    clock[0] = 124.0
    second.close()  # the job failed part-way: the last reported running total
    rows = [b for b in buckets(db) if b.kind == "training"]
    assert sum(b.compute_seconds for b in rows) == pytest.approx(17.0)
    assert sum(b.training_tokens for b in rows) == 77
    (stored,) = [b for b in buckets(db) if b.kind == "storage"]
    assert stored.bytes == 1000


def test_a_fine_tuning_job_is_metered_by_its_worker(
    client, acme, settings, tiny_models, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch", reason="training needs the ml extra (torch)")
    from tailorml.platform.jobs.worker import Worker
    from tests.platform.api.test_fine_tuning import _rows

    file_id = upload(client, acme, _rows(tmp_path / "t.jsonl", 10)).json()["id"]
    model = str(tiny_models["encoder"])
    body = {"model": model, "training_file": file_id, "hyperparameters": {"n_epochs": 1}}
    job = client.post("/v1/fine_tuning/jobs", headers=acme, json=body).json()
    assert Worker(settings).run(max_jobs=1) == 1
    done = client.get(f"/v1/fine_tuning/jobs/{job['id']}", headers=acme).json()
    assert done["status"] == "succeeded", done
    page = usage(client, acme, bucket_width="1d", group_by="model")
    (training,) = results(page, "tailorml.usage.fine_tuning.result")
    assert training["model"] == model and training["training_tokens"] == done["trained_tokens"] > 0
    assert training["compute_seconds"] > 0
    (storage,) = results(page, "tailorml.usage.storage.result")
    assert storage["bytes"] > 1_000_000  # the model written into the job's folder, and the file
    # Over a hard compute quota, no new job is accepted.
    assert quota(client, "acme", "compute_seconds", 0.001, period="month").status_code == 200
    refused = error(client.post("/v1/fine_tuning/jobs", headers=acme, json=body), 429)
    assert refused["code"] == "insufficient_quota" and "compute seconds" in refused["message"]


# -- storage, /v1/usage's parameters, the operator's routes and CLI ----------------------


def test_storage_is_measured_and_capped(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = client.app.state.tailor
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": "x"}) + "\n" for i in range(200)))
    size = path.stat().st_size
    first = upload(client, acme, path, purpose="user_data").json()
    state.usage.flush()
    (stored,) = results(usage(client, acme), "tailorml.usage.storage.result")
    assert stored["bytes"] == size
    # The next upload (its size plus the multipart envelope) would pass the quota.
    assert quota(client, "acme", "storage_bytes", size + 1000, period="total").status_code == 200
    refused = error(upload(client, acme, path, purpose="user_data"), 429)
    assert refused["code"] == "insufficient_quota" and "bytes stored" in refused["message"]
    assert client.delete(f"/v1/files/{first['id']}", headers=acme).status_code == 200
    state.usage.flush()
    assert upload(client, acme, path, purpose="user_data").status_code == 200
    bad = quota(client, "acme", "storage_bytes", 10, period="month")
    assert error(bad, 400)["param"] == "period"


def test_a_batch_is_refused_once_a_token_quota_is_used_up(client, acme) -> None:  # type: ignore[no-untyped-def]
    assert quota(client, "acme", "tokens", 0, period="month").status_code == 200
    assert quota(client, "acme", "requests", 1, period="minute", kind="rate").status_code == 200
    body = {
        "input_file_id": "file-x",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    refused = error(client.post("/v1/batches", headers=acme, json=body), 429)
    assert refused["code"] == "insufficient_quota" and "tokens" in refused["message"]
    client.delete("/admin/tenants/acme/quotas", headers=ADMIN, params={"kind": "hard"})
    # Creating batches does not take from the request rate, which counts inference calls.
    for _ in range(2):
        res = client.post("/v1/batches", headers=acme, json=body)
        assert res.status_code != 429 and "x-ratelimit-limit-requests" not in res.headers, res.text


def test_usage_parameters_and_pages(client, acme) -> None:  # type: ignore[no-untyped-def]
    state = client.app.state.tailor
    with session_scope(state.sessions) as s:
        tenant_id = get_tenant(s, name_or_id="acme").id
    day = 86400 * 20000
    for d in range(3):
        state.usage.record_request(tenant_id, "m", prompt_tokens=d + 1, at=day + d * 86400 + 5)
    state.usage.flush()
    first = usage(client, acme, start_time=day + 100, end_time=day + 3 * 86400, limit=2)
    assert [b["start_time"] for b in first["data"]] == [day, day + 86400]  # aligned to days
    assert first["has_more"] and first["next_page"] == str(day + 2 * 86400)
    rest = usage(client, acme, start_time=day, end_time=day + 3 * 86400, page=first["next_page"])
    assert not rest["has_more"] and [r["input_tokens"] for r in results(rest)] == [3]
    assert [r["input_tokens"] for r in results(first)] == [1, 2]
    for params, param in (
        ({"start_time": 0, "bucket_width": "1w"}, "bucket_width"),
        ({"start_time": 0, "limit": 99}, "limit"),
        ({"start_time": 10, "end_time": 5}, "start_time"),
        ({"start_time": 0, "group_by": "project_id"}, "group_by"),
        ({}, "start_time"),
    ):
        assert error(client.get("/v1/usage", headers=acme, params=params), 400)["param"] == param


def test_operator_quotas_and_report(client, acme, globex) -> None:  # type: ignore[no-untyped-def]
    state = client.app.state.tailor
    made = quota(client, "acme", "requests", 1000, period="day").json()
    assert (made["metric"], made["limit"], made["period"], made["kind"]) == (
        "requests",
        1000,
        "day",
        "hard",
    )
    assert quota(client, "acme", "requests", 2000, period="day").json()["limit"] == 2000  # changed
    assert quota(client, "acme", "requests", 60, period="minute", kind="rate").status_code == 200
    listed = client.get("/admin/tenants/acme/quotas", headers=ADMIN).json()["data"]
    assert sorted((q["period"], q["kind"], q["limit"]) for q in listed) == [
        ("day", "hard", 2000),
        ("minute", "rate", 60),
    ]
    bad = error(quota(client, "acme", "gpus", -1, kind="rate"), 400)
    assert bad["param"] == "metric" and "limit must be" in bad["message"]
    assert (
        error(quota(client, "acme", "storage_bytes", 5, period="total", kind="rate"), 400)["param"]
        == "kind"
    )
    assert (
        error(quota(client, "acme", "requests", 5, period="month", kind="rate"), 400)["param"]
        == "period"
    )
    assert error(
        client.post(
            "/admin/tenants/acme/quotas", headers=acme, json={"metric": "requests", "limit": 1}
        ),
        403,
    )
    with session_scope(state.sessions) as s:
        ids = {t: get_tenant(s, name_or_id=t).id for t in ("acme", "globex")}
    state.usage.record_request(ids["acme"], "m1", prompt_tokens=4, completion_tokens=6)
    state.usage.record_request(ids["globex"], "m2", prompt_tokens=1)
    state.usage.flush()
    report = client.get("/admin/usage", headers=ADMIN, params={"start_time": 0}).json()["data"]
    by_name = {r["tenant"]: r for r in report}
    assert (
        by_name["acme"]["totals"]["total_tokens"] == 10
        and by_name["globex"]["totals"]["requests"] == 1
    )
    assert [q["used"] for q in by_name["acme"]["quotas"] if q["period"] == "day"] == [1]
    one = client.get(
        "/admin/usage", headers=ADMIN, params={"start_time": 0, "tenant": "globex"}
    ).json()
    assert [r["tenant"] for r in one["data"]] == ["globex"]
    assert client.get("/admin/usage", headers=acme, params={"start_time": 0}).status_code == 403
    gone = client.delete(
        "/admin/tenants/acme/quotas", headers=ADMIN, params={"kind": "rate"}
    ).json()
    assert gone["deleted"] == 1


def test_quota_and_usage_commands(db_url, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tailorml.cli import app

    monkeypatch.setenv("TAILOR_DATABASE_URL", db_url)
    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TAILOR_MASTER_SECRET", "cli-secret")
    runner = CliRunner()
    assert runner.invoke(app, ["admin", "tenant", "create", "acme"]).exit_code == 0
    made = runner.invoke(
        app, ["admin", "quota", "set", "acme", "tokens", "50000", "--period", "day"]
    )
    assert made.exit_code == 0, made.output
    rate = runner.invoke(
        app,
        ["admin", "quota", "set", "acme", "requests", "60", "--period", "minute", "--kind", "rate"],
    )
    assert rate.exit_code == 0, rate.output
    listed = runner.invoke(app, ["admin", "quota", "list", "--tenant", "acme"])
    assert "tokens" in listed.output and "50000" in listed.output and "rate" in listed.output
    assert runner.invoke(app, ["admin", "quota", "set", "acme", "gpus", "1"]).exit_code == 2
    report = runner.invoke(app, ["admin", "usage", "--tenant", "acme", "--since", "7d", "--json"])
    assert report.exit_code == 0, report.output
    (row,) = json.loads(report.output)["data"]
    assert row["tenant"] == "acme" and {q["metric"] for q in row["quotas"]} == {
        "tokens",
        "requests",
    }
    assert runner.invoke(app, ["admin", "usage", "--since", "yesterday"]).exit_code == 2
    table = runner.invoke(app, ["admin", "usage"])
    assert table.exit_code == 0 and "acme" in table.output
    cleared = runner.invoke(app, ["admin", "quota", "clear", "acme", "tokens"])
    assert cleared.exit_code == 0 and "1 quota" in cleared.output


def test_the_migration_makes_the_models_tables(db) -> None:  # type: ignore[no-untyped-def]
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = ("usage_buckets", "tenant_quotas", "rate_counters")
    assert [d for d in diff if any(t in str(d) for t in mine)] == []
