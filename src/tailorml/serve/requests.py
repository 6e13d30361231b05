"""Checks on what a caller asks the engine for, with OpenAI's limits and a fix in each message.

The HTTP layer validates bodies with pydantic too, but the engine is also
called straight from Python and the CLI, so it refuses bad values itself
rather than failing deep inside a forward pass.
"""

from __future__ import annotations

from typing import Any

from tailorml.errors import InvalidRequestError
from tailorml.serve.grammar import Grammar

MAX_STOPS = 4  # OpenAI's limit on stop strings


def check_messages(messages: Any) -> list[dict[str, str]]:
    """Chat messages as the template expects them: role and plain-text content.

    OpenAI also accepts content as a list of parts; the text parts are joined
    since the models served here read text only.
    """
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError(
            "'messages' must be a non-empty list of {role, content} objects.", param="messages"
        )
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequestError(
                f"messages[{i}] must be an object with a string 'role' and a 'content'.",
                param="messages",
            )
        content = message.get("content")
        if content is None:
            content = ""
        elif isinstance(content, list):
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                raise InvalidRequestError(
                    f"messages[{i}].content has a non-text part; this model reads text only, "
                    "so send text parts or a string.",
                    param="messages",
                )
            content = "".join(str(p.get("text", "")) for p in content)
        elif not isinstance(content, str):
            raise InvalidRequestError(
                f"messages[{i}].content must be a string or a list of text parts.",
                param="messages",
            )
        out.append({"role": message["role"], "content": content})
    return out


def check_sampling(
    max_tokens: int | None,
    temperature: float,
    top_p: float,
    stop: list[str] | str | None,
    seed: int | None,
) -> list[str]:
    """Refuse out-of-range sampling options; return the stop strings as a list."""
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise InvalidRequestError(
            f"max_tokens must be a positive integer or null, got {max_tokens!r}.",
            param="max_tokens",
        )
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise InvalidRequestError("temperature must be a number.", param="temperature")
    if not 0 <= temperature <= 2:
        raise InvalidRequestError(
            f"temperature must be between 0 and 2, got {temperature}; use 0 for greedy decoding.",
            param="temperature",
        )
    if isinstance(top_p, bool) or not isinstance(top_p, int | float) or not 0 < top_p <= 1:
        raise InvalidRequestError(
            f"top_p must be a number in (0, 1], got {top_p!r}.", param="top_p"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidRequestError(f"seed must be an integer, got {seed!r}.", param="seed")
    stops = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise InvalidRequestError("stop must be a string or a list of strings.", param="stop")
    if len(stops) > MAX_STOPS:
        raise InvalidRequestError(
            f"stop takes at most {MAX_STOPS} strings, got {len(stops)}.", param="stop"
        )
    return stops


def check_inputs(inputs: Any) -> list[str]:
    """Texts to embed or classify: a non-empty list of non-empty strings."""
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequestError("'input' must be a string or a non-empty list of strings.",
                                  param="input")  # fmt: skip
    for i, text in enumerate(inputs):
        if not isinstance(text, str) or not text:
            raise InvalidRequestError(f"input[{i}] must be a non-empty string.", param="input")
    return inputs


MAX_CHOICES = 16  # n: choices decode side by side in the batch; OpenAI allows 128
MAX_TOP_LOGPROBS = 20  # OpenAI's limit


def check_choices(
    presence_penalty: float, frequency_penalty: float, logprobs: int | None, n: int
) -> None:
    """Refuse penalties, logprobs and n outside OpenAI's ranges (and ours, for n)."""
    for name, value in (("presence_penalty", presence_penalty),
                        ("frequency_penalty", frequency_penalty)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int | float) or not -2 <= value <= 2:
            raise InvalidRequestError(
                f"{name} must be a number between -2 and 2, got {value!r}.", param=name
            )
    if logprobs is not None and (
        isinstance(logprobs, bool)
        or not isinstance(logprobs, int)
        or not 0 <= logprobs <= MAX_TOP_LOGPROBS
    ):
        raise InvalidRequestError(
            f"top_logprobs must be an integer between 0 and {MAX_TOP_LOGPROBS}, got {logprobs!r}.",
            param="top_logprobs",
        )
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CHOICES:
        raise InvalidRequestError(
            f"n must be an integer between 1 and {MAX_CHOICES} here, got {n!r}; send several "
            "requests for more choices.",
            param="n",
        )


def grammar_for(response_format: Any) -> Grammar | None:
    """The grammar an answer must match for OpenAI's ``response_format`` (None: free text)."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return Grammar.json_object()
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or "schema" not in spec:
            raise InvalidRequestError(
                'response_format json_schema needs {"json_schema": {"name": ..., "schema": '
                "{...}}}.",
                param="response_format",
            )
        return Grammar.from_schema(spec["schema"])
    raise InvalidRequestError(
        f"response_format.type must be 'text', 'json_object' or 'json_schema', got {kind!r}.",
        param="response_format",
    )
