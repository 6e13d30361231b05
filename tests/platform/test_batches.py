"""The Batch API: input checked when the batch is created, answered by a worker at low priority
in a child process, every custom_id answered once (also after a crash), cancel keeping what
was answered, usage metered, and OpenAI's objects as the openai SDK reads them."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tailorml.platform.db.engine import session_scope
from tailorml.platform.db.models import UsageBucket
from tailorml.platform.jobs.worker import Worker
from tests.platform.api.test_errors import error

pytest.importorskip("torch", reason="batches run models (the ml extra)")

from tests.platform.api.test_inference import adapters, register  # noqa: E402, F401

QUESTIONS = [
    "Give three tips for staying healthy.",
    "What is the capital of France?",
    "Write a haiku about autumn.",
    "Name two prime numbers.",
    "How do I boil an egg?",
    "Translate 'thank you' into Spanish.",
]


def chat_line(custom_id: str, model: str, question: str, **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": question}],
            "max_tokens": 8, "temperature": 0, **extra}  # fmt: skip
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def upload(client, headers, lines: list[Any], purpose: str = "batch") -> str:  # type: ignore[no-untyped-def]
    text = "\n".join(json.dumps(line) if not isinstance(line, str) else line for line in lines)
    res = client.post("/v1/files", headers=headers, data={"purpose": purpose},
                      files={"file": ("batch.jsonl", io.BytesIO(text.encode()))})  # fmt: skip
    assert res.status_code == 200, res.text
    return str(res.json()["id"])


def create(client, headers, file_id: str, endpoint: str = "/v1/chat/completions"):  # type: ignore[no-untyped-def]
    return client.post("/v1/batches", headers=headers, json={
        "input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h",
        "metadata": {"team": "support"}})  # fmt: skip


def content(client, headers, file_id: str) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    res = client.get(f"/v1/files/{file_id}/content", headers=headers)
    assert res.status_code == 200
    lines = [json.loads(x) for x in res.text.splitlines()]
    by_id = {line["custom_id"]: line for line in lines}
    assert len(by_id) == len(lines)  # each custom_id once
    return by_id


def test_bad_input_is_refused_when_the_batch_is_created(client, acme, adapters) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = register(client, "acme", "b", adapters["a"])
    good = chat_line("a", model, QUESTIONS[0])
    bad = upload(client, acme, [
        good,
        "{not json",
        chat_line("a", model, QUESTIONS[1]),  # the same custom_id again
        {**chat_line("c", model, QUESTIONS[1]), "url": "/v1/embeddings"},
        chat_line("d", model, QUESTIONS[2], temperature=7),
        {**chat_line("e", model, QUESTIONS[2]), "method": "GET"},
    ])  # fmt: skip
    body = error(create(client, acme, bad), 400)
    assert body["code"] == "invalid_file_format" and body["param"] == "input_file_id"
    for fragment in (
        "line 2: not JSON",
        "line 3: custom_id 'a' is used twice",
        "line 4: url must be",
        "line 5: body.temperature",
        "line 6: method",
    ):
        assert fragment in body["message"], body["message"]
    tuning = upload(client, acme, [good], purpose="user_data")
    assert "purpose" in error(create(client, acme, tuning), 400)["message"]
    ok = upload(client, acme, [good])
    assert error(create(client, acme, ok, endpoint="/v1/images"), 400)["param"] == "endpoint"
    assert client.get("/v1/batches", headers=acme).json()["data"] == []


def test_a_batch_answers_every_request_once_as_the_endpoint_would(
    client,
    acme,
    globex,
    adapters,  # noqa: F811
    settings,
) -> None:  # type: ignore[no-untyped-def]
    model = register(client, "acme", "batch", adapters["a"])
    lines = [chat_line(f"q{i}", model, q) for i, q in enumerate(QUESTIONS)]
    lines.append(chat_line("ghost", "ft:tiny-llama:acme:none:00000000", QUESTIONS[0]))
    batch = create(client, acme, upload(client, acme, lines)).json()
    assert batch["status"] == "validating" and batch["request_counts"]["total"] == 7
    assert batch["metadata"] == {"team": "support"} and batch["object"] == "batch"
    assert error(client.get(f"/v1/batches/{batch['id']}", headers=globex), 404)
    assert Worker(settings).run(max_jobs=1) == 1
    done = client.get(f"/v1/batches/{batch['id']}", headers=acme).json()
    assert done["status"] == "completed", done
    assert done["request_counts"] == {"total": 7, "completed": 6, "failed": 1}
    assert done["completed_at"] and done["finalizing_at"] and done["in_progress_at"]
    answers = content(client, acme, done["output_file_id"])
    assert sorted(answers) == [f"q{i}" for i in range(6)]
    for i, question in enumerate(QUESTIONS[:3]):
        live = client.post("/v1/chat/completions", headers=acme, json=lines[i]["body"]).json()
        answer = answers[f"q{i}"]["response"]
        assert answer["status_code"] == 200
        assert (
            answer["body"]["choices"][0]["message"]["content"]
            == (live["choices"][0]["message"]["content"])
        ), question
    failed = content(client, acme, done["error_file_id"])
    assert failed["ghost"]["response"]["status_code"] == 404
    assert failed["ghost"]["response"]["body"]["error"]["code"] == "model_not_found"
    state = client.app.state.tailor
    with session_scope(state.sessions) as s:
        metered = s.scalar(select(func.sum(UsageBucket.requests)).where(
            UsageBucket.model == model, UsageBucket.kind == "request"))  # fmt: skip
    # the six batch answers and the three live ones (written within a second)
    deadline = time.monotonic() + 5
    while (metered or 0) < 9 and time.monotonic() < deadline:
        time.sleep(0.2)
        with session_scope(state.sessions) as s:
            metered = s.scalar(select(func.sum(UsageBucket.requests)).where(
                UsageBucket.model == model, UsageBucket.kind == "request"))  # fmt: skip
    assert metered == 9
    listed = client.get("/v1/batches", headers=acme).json()
    assert [b["id"] for b in listed["data"]] == [batch["id"]] and listed["has_more"] is False


def test_a_resumed_batch_answers_nothing_twice(client, acme, adapters, settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """A worker died after answering q0 (and while writing q1): the next attempt keeps q0's
    answer, drops the half-written line, and answers the rest."""
    model = register(client, "acme", "resume", adapters["b"])
    lines = [chat_line(f"q{i}", model, q) for i, q in enumerate(QUESTIONS[:3])]
    batch = create(client, acme, upload(client, acme, lines)).json()
    work = Path(settings.jobs_dir) / batch["id"]
    work.mkdir(parents=True)
    earlier = {"id": "batch_req_earlier", "custom_id": "q0", "error": None,
               "response": {"status_code": 200, "request_id": "req_earlier",
                            "body": {"model": model, "choices": [], "usage": {}}}}  # fmt: skip
    (work / "output.jsonl").write_text(json.dumps(earlier) + '\n{"id": "batch_req_cut', "utf-8")
    assert Worker(settings).run(max_jobs=1) == 1
    done = client.get(f"/v1/batches/{batch['id']}", headers=acme).json()
    assert done["status"] == "completed" and done["request_counts"]["completed"] == 3
    answers = content(client, acme, done["output_file_id"])
    assert answers["q0"]["id"] == "batch_req_earlier"
    assert sorted(answers) == ["q0", "q1", "q2"]


def test_cancelling_keeps_what_was_answered(client, acme, adapters, settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = register(client, "acme", "cancel", adapters["a"])
    lines = [chat_line(f"q{i}", model, QUESTIONS[i % 6], max_tokens=30) for i in range(200)]
    batch = create(client, acme, upload(client, acme, lines)).json()
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run, kwargs={"max_jobs": 1})
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = client.get(f"/v1/batches/{batch['id']}", headers=acme).json()
        if seen["request_counts"]["completed"] >= 2:
            break
        time.sleep(0.3)
    cancelling = client.post(f"/v1/batches/{batch['id']}/cancel", headers=acme).json()
    assert cancelling["status"] == "cancelling"
    thread.join(120)
    assert not thread.is_alive()
    done = client.get(f"/v1/batches/{batch['id']}", headers=acme).json()
    assert done["status"] == "cancelled" and done["cancelled_at"]
    completed = done["request_counts"]["completed"]
    assert 2 <= completed < 200
    assert len(content(client, acme, done["output_file_id"])) == completed


def test_the_openai_sdk_drives_a_batch(client, acme, adapters, settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from openai import OpenAI

    model = register(client, "acme", "sdk", adapters["b"])
    openai = OpenAI(base_url="http://testserver/v1", http_client=client, max_retries=0,
                    api_key=acme["Authorization"].removeprefix("Bearer "))  # fmt: skip
    text = "\n".join(json.dumps(chat_line(f"r{i}", model, q)) for i, q in enumerate(QUESTIONS[:2]))
    uploaded = openai.files.create(file=("in.jsonl", text.encode()), purpose="batch")
    batch = openai.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")  # fmt: skip
    assert batch.status == "validating"
    assert Worker(settings).run(max_jobs=1) == 1
    batch = openai.batches.retrieve(batch.id)
    assert batch.status == "completed" and batch.request_counts is not None
    assert batch.request_counts.completed == 2 and batch.output_file_id
    lines = openai.files.content(batch.output_file_id).text.splitlines()
    assert sorted(json.loads(x)["custom_id"] for x in lines) == ["r0", "r1"]
    assert [b.id for b in openai.batches.list()] == [batch.id]
