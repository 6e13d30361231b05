"""A transformers tokenizer behind the engine's ``Tokenizer`` contract, safe across threads.

Both backends use it: the PyTorch one loads the tokenizer from the model
(or adapter) folder; a vLLM backend would wrap the tokenizer vLLM returns
for a ``LoRARequest``, which is a transformers tokenizer too. Encoding and
chat rendering hold a lock because a fast tokenizer's Rust state is
mutably borrowed while encoding and raises "Already borrowed" when two
threads encode with it at once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tailorml.errors import InvalidRequestError, ModelUnavailableError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# ChatML models (SmolLM2, Qwen) end a turn with this even where the config names another eos.
TURN_END = "<|im_end|>"


class HFTokenizer:
    """One transformers tokenizer: encode, decode, render chat, and its stop tokens."""

    def __init__(self, tokenizer: Any) -> None:
        self.hf = tokenizer
        self._lock = threading.Lock()

    def encode(self, text: str, *, special: bool) -> list[int]:
        with self._lock:
            return list(self.hf(text, add_special_tokens=special)["input_ids"])

    def encode_pair(self, first: str, second: str) -> tuple[list[int], list[int] | None]:
        with self._lock:
            out = self.hf(first, second, add_special_tokens=True)
        types = out.get("token_type_ids")
        return list(out["input_ids"]), list(types) if types is not None else None

    def decode(self, ids: list[int]) -> str:
        # No space clean-up: it rewrites " ." across piece boundaries, so the
        # pieces of a stream would no longer join to the whole.
        return str(
            self.hf.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        )

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        from jinja2 import TemplateError

        if not getattr(self.hf, "chat_template", None):
            raise InvalidRequestError(
                "This model has no chat template, so it cannot take messages; call "
                "completions with a prompt instead, or fine-tune it for chat.",
                param="messages",
            )
        try:
            with self._lock:
                text = self.hf.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
        except TemplateError as exc:
            # Templates raise to enforce their rules (e.g. alternating roles).
            raise InvalidRequestError(
                f"The model's chat template refused these messages: {exc}", param="messages"
            ) from exc
        return str(text)

    def stop_token_ids(self) -> set[int]:
        """The tokenizer's eos and, when the vocabulary has it, the ChatML turn end."""
        ids: set[int] = set()
        if isinstance(self.hf.eos_token_id, int):
            ids.add(self.hf.eos_token_id)
        turn_end = self.hf.convert_tokens_to_ids(TURN_END)
        if isinstance(turn_end, int) and turn_end != self.hf.unk_token_id:
            ids.add(turn_end)
        return ids


def load_tokenizer(path: Path) -> HFTokenizer:
    """The tokenizer saved in ``path``, or ``ModelUnavailableError`` saying what to fix."""
    from transformers import AutoTokenizer

    try:
        return HFTokenizer(AutoTokenizer.from_pretrained(path, trust_remote_code=False))
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"The tokenizer in {path} cannot be loaded ({exc}); save the tokenizer with the model.",
            param="model",
        ) from exc


def has_tokenizer(path: Path) -> bool:
    """Whether ``path`` (an adapter folder, say) ships a tokenizer of its own."""
    return any((path / name).is_file() for name in TOKENIZER_FILES)
