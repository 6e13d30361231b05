"""The server a user would otherwise write: FastAPI, one plain ``def`` endpoint per task.

``/v1/chat/completions`` renders the chat template and calls ``model.generate``
(greedy) per request; ``/v1/classifications`` calls a transformers
``text-classification`` pipeline per request. uvicorn runs the ``def``
endpoints in its thread pool, so concurrent requests run their forward
passes side by side with no batching. The answers are shaped like
OpenAI's so the same client drives both servers.

    python benchmarks/serve/naive_server.py --decoder DIR --classifier DIR --port 8001
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline


def build(decoder: str | None, classifier: str | None) -> FastAPI:
    app = FastAPI()
    if decoder:
        tok = AutoTokenizer.from_pretrained(decoder)
        model = AutoModelForCausalLM.from_pretrained(decoder, dtype=torch.float32).eval()

        @app.post("/v1/chat/completions")
        def chat(body: dict[str, Any]) -> dict[str, Any]:
            prompt = tok.apply_chat_template(body["messages"], tokenize=False,
                                             add_generation_prompt=True)  # fmt: skip
            ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
            with torch.inference_mode():
                out = model.generate(**ids, max_new_tokens=body.get("max_tokens", 128),
                                     do_sample=False)  # fmt: skip
            new = out[0, ids["input_ids"].shape[1] :]
            text = tok.decode(new, skip_special_tokens=True)
            n_prompt, n_out = int(ids["input_ids"].shape[1]), int(new.shape[0])
            return {
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],  # fmt: skip
                "usage": {
                    "prompt_tokens": n_prompt,
                    "completion_tokens": n_out,
                    "total_tokens": n_prompt + n_out,
                },  # fmt: skip
            }

    if classifier:
        classify = pipeline("text-classification", model=classifier, device="cpu")

        @app.post("/v1/classifications")
        def classifications(body: dict[str, Any]) -> dict[str, Any]:
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            results = classify(inputs, truncation=True)
            return {"object": "list", "data": [{"index": i, **r} for i, r in enumerate(results)]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder")
    parser.add_argument("--classifier")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.decoder, args.classifier), host="127.0.0.1", port=args.port,
                log_level="warning")  # fmt: skip


if __name__ == "__main__":
    main()
