"""The batch runner: ``python -m tailorml.platform.jobs.batch_run WORK_DIR`` (started by ``batch.py``).

Reads ``plan.json`` (the endpoint, the tenant, the input file, the models
resolved for the tenant, the engine's settings), answers every request of
the input whose ``custom_id`` is not yet in ``output.jsonl`` or
``errors.jsonl``, and appends one line per answer, flushed, in OpenAI's
batch output shape. ``concurrency`` requests are in flight at once so they
share the engine's continuous and dynamic batches. Each body is checked
with the endpoint's own request model and answered through the same
engine calls and response shapes as the HTTP routes, so a batch answer is
what the interactive endpoint would have answered. SIGTERM stops taking
new requests; answers already written stay.
"""

from __future__ import annotations

import json
import secrets
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tailorml.errors import InvalidRequestError, TailorError
from tailorml.platform.api import shapes
from tailorml.platform.batches import ENDPOINTS


def _done_ids(path: Path) -> set[str]:
    """custom_ids already answered in ``path``; a line cut off by a kill is removed first."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as fh:
            fh.truncate(end)
    return {json.loads(line)["custom_id"] for line in data[:end].splitlines()}


class Runner:
    def __init__(self, work: Path) -> None:
        from tailorml.serve import Engine, ModelRef

        self.work = work
        self.plan = json.loads((work / "plan.json").read_text(encoding="utf-8"))
        self.engine = Engine(**self.plan["engine"])
        self.refs: dict[str, Any] = {}
        self.missing: dict[str, dict[str, Any]] = {}
        for name, fields in self.plan["models"].items():
            if "error" in fields:
                self.missing[name] = fields
                continue
            for key in ("path", "base_path"):
                if fields.get(key) is not None:
                    fields[key] = Path(fields[key])
            if fields.get("labels") is not None:
                fields["labels"] = tuple(fields["labels"])
            self.refs[name] = ModelRef(**fields)
        self.stop = threading.Event()
        self._write = threading.Lock()

    def run(self) -> None:
        done = _done_ids(self.work / "output.jsonl") | _done_ids(self.work / "errors.jsonl")
        # Opened after the truncation above, so appends start at a line boundary.
        self.out = open(self.work / "output.jsonl", "ab")  # noqa: SIM115
        self.err = open(self.work / "errors.jsonl", "ab")  # noqa: SIM115
        lines = []
        with open(self.plan["input"], encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                if raw.strip():
                    line = json.loads(raw)
                    if line["custom_id"] not in done:
                        lines.append(line)
        with ThreadPoolExecutor(self.plan["concurrency"], thread_name_prefix="batch") as pool:
            for _ in pool.map(self.answer, lines):
                pass
        for out in (self.out, self.err):
            out.flush()
            out.close()

    def answer(self, line: dict[str, Any]) -> None:
        if self.stop.is_set():
            return
        request_id = f"req_{secrets.token_hex(12)}"
        try:
            body = self.respond(line["body"])
            status, target = 200, self.out
        except TailorError as exc:
            body, status, target = exc.to_openai(), exc.status_code, self.err
        except Exception as exc:  # process boundary: one request's crash fails that request
            body = {"error": {"message": f"The request failed on an internal error "
                              f"({type(exc).__name__}).", "type": "server_error",
                              "param": None, "code": "internal_error"}}  # fmt: skip
            status, target = 500, self.err
        record = {
            "id": f"batch_req_{secrets.token_hex(12)}",
            "custom_id": line["custom_id"],
            "response": {"status_code": status, "request_id": request_id, "body": body},
            "error": None,
        }
        data = (json.dumps(record) + "\n").encode("utf-8")
        with self._write:
            target.write(data)
            target.flush()

    def respond(self, raw: dict[str, Any]) -> dict[str, Any]:
        endpoint, tenant = self.plan["endpoint"], self.plan["tenant"]
        kind = ENDPOINTS[endpoint]
        try:
            body: Any = kind.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidRequestError(
                f"{'.'.join(map(str, first['loc']))}: {first['msg']}", param=str(first["loc"][0])
            ) from exc
        missing = self.missing.get(body.model)
        if missing is not None:
            error = TailorError(missing["error"]["error"]["message"],
                                param="model", code=missing["error"]["error"]["code"])  # fmt: skip
            error.status_code = missing["status"]
            raise error
        ref = self.refs[body.model]
        head = {"id": f"chatcmpl-{secrets.token_hex(12)}", "created": int(time.time()),
                "model": body.model}  # fmt: skip
        if endpoint == "/v1/chat/completions":
            messages = [
                {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in body.messages
            ]
            out = self.engine.chat(ref, messages, **body.engine_options(), tenant=tenant)
            return shapes.chat_completion(out, head)
        if endpoint == "/v1/completions":
            out = self.engine.complete(ref, body.prompt, **body.engine_options(), tenant=tenant)
            return shapes.text_completion(out, head | {"id": f"cmpl-{head['id'][9:]}"},
                                          len(body.prompt))  # fmt: skip
        inputs = [body.input] if isinstance(body.input, str) else body.input
        if endpoint == "/v1/embeddings":
            if body.dimensions is not None:
                raise InvalidRequestError(
                    "dimensions is not supported by these models; leave it out.",
                    param="dimensions",
                )
            vectors, tokens = self.engine.embed(ref, inputs, truncate=body.truncate, tenant=tenant)
            return shapes.embedding_list(vectors, body.model, tokens, body.encoding_format)
        results, tokens = self.engine.classify(ref, inputs, truncate=body.truncate, tenant=tenant)
        return shapes.classification_list(results, body.model, tokens)


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)  # the API's requests keep the other cores
    runner = Runner(Path(argv[0]))
    signal.signal(signal.SIGTERM, lambda *_: runner.stop.set())
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
