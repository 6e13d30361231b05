"""Idempotency-Key on the creating routes: a retry answers the first object, another body with
the same key answers 409, failures are not remembered, keys are per tenant, a retried upload
leaves no second copy of its bytes, and the openai SDK's own retries create one job."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tailorml.platform import idempotency
from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import File, IdempotencyKey, Job
from tests.platform.api.test_errors import error
from tests.platform.test_files import upload


def _rows(path: Path, n: int = 10) -> Path:
    lines = (
        json.dumps({"text": f"message {i}", "label": ("spam", "ham")[i % 2]}) for i in range(n)
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def _job(client, headers, key, **body):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/fine_tuning/jobs", headers={**headers, "Idempotency-Key": key}, json=body
    )


def _count(settings, table, **where) -> int:  # type: ignore[no-untyped-def]
    from tailorml.platform.db.engine import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            query = select(func.count()).select_from(table)
            for column, value in where.items():
                query = query.where(getattr(table, column) == value)
            return int(session.scalar(query) or 0)
    finally:
        engine.dispose()


@pytest.fixture
def training_file(client, acme, settings, tmp_path) -> str:  # type: ignore[no-untyped-def]
    settings.allow_hub_models = True
    return str(upload(client, acme, _rows(tmp_path / "t.jsonl")).json()["id"])


def test_a_retry_answers_the_first_job(client, acme, settings, training_file) -> None:  # type: ignore[no-untyped-def]
    key = str(uuid.uuid4())
    first = _job(client, acme, key, model="org/m", training_file=training_file, suffix="a")
    assert first.status_code == 200 and idempotency.REPLAYED_HEADER not in first.headers
    again = _job(client, acme, key, training_file=training_file, suffix="a", model="org/m")
    assert again.status_code == 200 and again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert again.json() == first.json()
    assert _count(settings, Job) == 1

    other = error(_job(client, acme, key, model="org/m", training_file=training_file), 409)
    assert other["code"] == "idempotency_key_reused" and other["param"] == "Idempotency-Key"
    on_batches = client.post(
        "/v1/batches",
        headers={**acme, "Idempotency-Key": key},
        json={"input_file_id": training_file, "endpoint": "/v1/chat/completions",
              "completion_window": "24h"},
    )  # fmt: skip
    assert error(on_batches, 409)["code"] == "idempotency_key_reused"
    # Without a key every request creates.
    plain = client.post("/v1/fine_tuning/jobs", headers=acme,
                        json={"model": "org/m", "training_file": training_file, "suffix": "a"})  # fmt: skip
    assert plain.status_code == 200 and plain.json()["id"] != first.json()["id"]


def test_failures_are_not_remembered_and_keys_are_per_tenant(  # type: ignore[no-untyped-def]
    client, acme, globex, settings, training_file
) -> None:
    key = "retry-me"
    bad = _job(client, acme, key, model="org/m", training_file="file-nope")
    assert bad.status_code == 404
    good = _job(client, acme, key, model="org/m", training_file=training_file)
    assert good.status_code == 200 and idempotency.REPLAYED_HEADER not in good.headers
    # globex's same key is its own: it does not see acme's job (404 on acme's file, not a replay).
    theirs = _job(client, globex, key, model="org/m", training_file=training_file)
    assert theirs.status_code == 404 and good.json()["id"] not in theirs.text


@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "ünïcode"])
def test_unusable_keys_are_refused(client, acme, training_file, key) -> None:  # type: ignore[no-untyped-def]
    err = error(_job(client, acme, key.encode(), model="org/m", training_file=training_file), 400)
    assert err["param"] == "Idempotency-Key" and err["code"] == "invalid_idempotency_key"


def test_a_retried_upload_keeps_one_copy(client, acme, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _rows(tmp_path / "u.jsonl")
    headers = {**acme, "Idempotency-Key": "upload-1"}
    first = upload(client, headers, path)
    again = upload(client, headers, path)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers[idempotency.REPLAYED_HEADER] == "true"
    changed = _rows(tmp_path / "u.jsonl", 12)
    assert error(upload(client, headers, changed), 409)["code"] == "idempotency_key_reused"
    files = client.get("/v1/files", headers=acme).json()["data"]
    assert [f["id"] for f in files] == [first.json()["id"]]
    # The retry's and the refused upload's bytes are gone from storage: one stored file.
    stored = [p for p in (settings.data_dir / "files").rglob("*") if p.is_file()]
    assert len(stored) == 1, stored


def test_expired_keys_count_as_new(client, acme, settings, training_file) -> None:  # type: ignore[no-untyped-def]
    first = _job(client, acme, "old", model="org/m", training_file=training_file).json()
    from tailorml.platform.db.engine import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        row = session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == "old")).one()
        row.created_at -= idempotency.RETENTION_SECONDS + 1
    engine.dispose()
    second = _job(client, acme, "old", model="org/m", training_file=training_file)
    assert second.status_code == 200 and second.json()["id"] != first["id"]


def test_the_openai_sdk_retrying_a_lost_answer_creates_one_job(  # type: ignore[no-untyped-def]
    client, acme, settings, training_file
) -> None:
    """The SDK retries on a 5xx or a timeout, resending the request's headers: with an
    Idempotency-Key in ``extra_headers``, a first attempt whose answer was lost on the way back
    (the server did create the job) is answered again, not created twice."""
    openai = pytest.importorskip("openai", reason="the openai SDK is a dev dependency")
    attempts: list[httpx.Request] = []
    lock = threading.Lock()

    def send(request: httpx.Request) -> httpx.Response:
        headers = dict(request.headers)
        headers.pop("host", None)
        res = client.request(request.method, request.url.path, headers=headers,
                             content=request.read())  # fmt: skip
        with lock:
            attempts.append(request)
            lost = len(attempts) == 1
        if lost:  # the job exists now; the client sees a gateway error and retries
            return httpx.Response(502, json={"error": {"message": "bad gateway"}})
        return httpx.Response(res.status_code, headers=res.headers, content=res.content)

    sdk = openai.OpenAI(
        api_key=acme["Authorization"].removeprefix("Bearer "),
        base_url="http://tailor.test/v1",
        max_retries=2,
        http_client=httpx.Client(transport=httpx.MockTransport(send)),
    )
    key = str(uuid.uuid4())
    job = sdk.fine_tuning.jobs.create(
        model="org/m", training_file=training_file, extra_headers={"Idempotency-Key": key}
    )
    assert len(attempts) == 2
    assert {a.headers.get("idempotency-key") for a in attempts} == {key}
    listed = client.get("/v1/fine_tuning/jobs", headers=acme).json()["data"]
    assert [j["id"] for j in listed] == [job.id]
    assert _count(settings, Job) == 1 and _count(settings, File) == 1


def test_a_key_committed_meanwhile_rolls_this_request_back(settings, client) -> None:  # type: ignore[no-untyped-def]
    """The PostgreSQL race: both requests found no key, the other committed first; this one's
    insert of the key fails and answers 409 idempotency_key_in_use, its own object unsaved."""
    from tailorml.errors import ConflictError
    from tailorml.platform.db.engine import make_engine, make_sessionmaker
    from tailorml.platform.db.models import Tenant

    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as session:
        session.add(Tenant(id="tn_race", name="race"))
    args = dict(tenant_id="tn_race", key="k", endpoint="POST /v1/datasets", digest="d" * 64)
    with session_scope(factory) as session:
        idempotency.remember(session, **args, response={"id": "first"})
    with pytest.raises(ConflictError, match="at the same time") as raised:
        with session_scope(factory) as session:
            session.add(Tenant(id="tn_object", name="made-by-the-loser"))
            session.flush()
            idempotency.remember(session, **args, response={"id": "second"})
    assert raised.value.code == "idempotency_key_in_use"
    with session_scope(factory) as session:
        assert session.get(Tenant, "tn_object") is None
        assert idempotency.replay(session, **args) == {"id": "first"}
    engine.dispose()
