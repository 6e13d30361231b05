"""The trace of a run: what each operator removed, changed and added, and data profiles.

Nothing silently disappears: every removed record goes to
``removed/<stage>-<rank>.jsonl`` with the operator, its reason and the record
(as the operator saw it, plus the original when earlier steps had changed
more than its whitespace); a line that did not even parse is removed by the pseudo-operator
``read``. Per operator we count documents in, out, removed, changed (fields
differ), annotated (only meta differs, e.g. a quality flag) and added (new
records, e.g. augmentation), and keep a few examples of each for the report;
a changed record's example carries the meta its operator set beside the
before and after (``pii_redact``'s findings: type, span and confidence).

Counts and examples are plain dicts so a shard can write them into its
completion marker and a rerun that skips the shard still reports them.
"""

from __future__ import annotations

import bisect
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tailorml.data.core import Document, Filter, GlobalStep, Mapper, Operator
from tailorml.data.writers import JsonlWriter

READ_OP = "read"  # the pseudo-operator that removes lines that do not parse
EXAMPLES = 5  # examples kept per operator and shard; the report shows the first few
LENGTH_EDGES = [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]


def _clip(value: Any, limit: int = 1500) -> Any:
    """A copy small enough for a report example (long strings cut, with a mark)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"… [+{len(value) - limit} chars]"
    if isinstance(value, dict):
        return {k: _clip(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip(v, limit) for v in value[:50]]
    return value


@dataclass
class OpStats:
    """Counts and examples of one pipeline step (summed over shards with ``merge``)."""

    op: str
    step: int
    kind: str
    docs_in: int = 0
    docs_out: int = 0
    removed: int = 0
    changed: int = 0
    annotated: int = 0
    added: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    removed_examples: list[dict[str, Any]] = field(default_factory=list)
    changed_examples: list[dict[str, Any]] = field(default_factory=list)
    flagged_examples: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: OpStats) -> None:
        for name in ("docs_in", "docs_out", "removed", "changed", "annotated", "added", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reasons = dict(Counter(self.reasons) + Counter(other.reasons))
        self.removed_examples = (self.removed_examples + other.removed_examples)[:EXAMPLES]
        self.changed_examples = (self.changed_examples + other.changed_examples)[:EXAMPLES]
        self.flagged_examples = (self.flagged_examples + other.flagged_examples)[:EXAMPLES]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpStats:
        return cls(**data)


def _reason_key(reason: str) -> str:
    # Reasons embed values ("length: 8 chars < min 20"); group them with the numbers masked.
    return re.sub(r"\d+(\.\d+)?", "N", reason.strip())[:160] or "no reason given"


@dataclass
class Profile:
    """What the data looks like: size, length histogram (characters), labels, languages."""

    docs: int = 0
    chars: int = 0
    length_bins: list[int] = field(default_factory=lambda: [0] * len(LENGTH_EDGES))
    labels: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)  # meta keys set to True (label_issue, ...)

    def add(self, doc: Document) -> None:
        n = len(doc.text)
        self.docs += 1
        self.chars += n
        self.length_bins[bisect.bisect_right(LENGTH_EDGES, n) - 1] += 1
        label = doc.fields.get("label")
        if isinstance(label, str | int) and not isinstance(label, bool):
            self.labels[str(label)] = self.labels.get(str(label), 0) + 1
        lang = doc.meta.get("language") or doc.meta.get("lang")
        if isinstance(lang, str):
            self.languages[lang] = self.languages.get(lang, 0) + 1
        for key, value in doc.meta.items():
            if value is True:
                self.flags[key] = self.flags.get(key, 0) + 1

    def merge(self, other: Profile) -> None:
        self.docs += other.docs
        self.chars += other.chars
        self.length_bins = [a + b for a, b in zip(self.length_bins, other.length_bins, strict=True)]
        self.labels = dict(Counter(self.labels) + Counter(other.labels))
        self.languages = dict(Counter(self.languages) + Counter(other.languages))
        self.flags = dict(Counter(self.flags) + Counter(other.flags))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(**data)


def _squash(text: str) -> str:
    return " ".join(text.split())


def _changed_beyond_whitespace(before: Document, after: Document) -> bool:
    """Whether fields differ in more than spacing (the ``normalize`` step changes most records).

    An original that differs only in whitespace says nothing about why a
    record was removed, and writing it doubled ``removed/`` (70 MB for 31 MB
    of input in benchmarks/RESULTS.md). The exact bytes stay recoverable from
    the input file: ``meta`` names its source and line.
    """
    if before.fields == after.fields:
        return False
    return before.map_texts(_squash).fields != after.map_texts(_squash).fields


def _meta_added(before: Document, after: Document) -> dict[str, Any]:
    """The meta keys ``after`` set or changed."""
    return {k: v for k, v in after.meta.items() if before.meta.get(k) != v}


def _kind(op: Operator) -> str:
    return next((k.__name__ for k in (Mapper, Filter, GlobalStep) if isinstance(op, k)), "?")


class Trace:
    """Collects one shard's statistics and writes its removed records, atomically."""

    def __init__(self, removed_path: Path):
        self.removed_path = Path(removed_path)
        self.stats: dict[int, OpStats] = {}
        self._writer = JsonlWriter(self.removed_path)

    def stats_for(self, step: int, op: Operator | None, name: str) -> OpStats:
        if step not in self.stats:
            self.stats[step] = OpStats(name, step, _kind(op) if op is not None else "Reader")
        return self.stats[step]

    def remove(
        self, st: OpStats, doc: Document, reason: str, original: Document | None = None
    ) -> None:
        st.removed += 1
        key = _reason_key(reason)
        st.reasons[key] = st.reasons.get(key, 0) + 1
        row: dict[str, Any] = {"op": st.op, "step": st.step, "reason": reason, "id": doc.id}
        row["record"] = doc.fields
        row["meta"] = doc.meta
        if original is not None and _changed_beyond_whitespace(original, doc):
            row["original"] = original.fields
        self._writer.write_row(row)
        if len(st.removed_examples) < EXAMPLES:
            st.removed_examples.append(
                {"id": doc.id, "reason": reason, "record": _clip(doc.fields)}
            )

    def change(self, st: OpStats, before: Document, after: Document) -> None:
        if after.fields != before.fields:
            st.changed += 1
            if len(st.changed_examples) < EXAMPLES:
                example: dict[str, Any] = {
                    "id": before.id,
                    "before": _clip(before.fields),
                    "after": _clip(after.fields),
                }
                # What the operator recorded about its change (pii_redact: each finding's
                # type, span and confidence), so the report says why the text changed.
                if recorded := _meta_added(before, after):
                    example["meta"] = _clip(recorded)
                st.changed_examples.append(example)
        elif after.meta != before.meta:
            st.annotated += 1
            added = _meta_added(before, after)
            # Show records an operator raised a flag on (label_issue, ...), not every new score.
            if any(v is True for v in added.values()) and len(st.flagged_examples) < EXAMPLES:
                st.flagged_examples.append(
                    {"id": after.id, "meta": _clip(added), "record": _clip(after.fields)}
                )

    def close(self, ok: bool = True) -> None:
        self._writer.close(ok)

    @property
    def removed_count(self) -> int:
        return self._writer.count


def screen_reads(docs: Iterable[Document], trace: Trace) -> Iterator[Document]:
    """Pass readable documents on; lines the reader could not parse are removed by ``read``."""
    st = trace.stats_for(-1, None, READ_OP)
    for doc in docs:
        st.docs_in += 1
        if "read_error" in doc.meta:
            trace.remove(st, doc, f"unreadable: {doc.meta['read_error']}")
            continue
        st.docs_out += 1
        yield doc


def apply_stream(
    docs: Iterable[Document], ops: list[tuple[int, str, Operator]], trace: Trace
) -> Iterator[Document]:
    """Run consecutive Mapper/Filter steps over a stream, tracing every removal and change."""
    stats = [trace.stats_for(i, op, name) for i, name, op in ops]
    for doc in docs:
        original = doc
        for (_, _, op), st in zip(ops, stats, strict=True):
            st.docs_in += 1
            start = time.perf_counter()
            if isinstance(op, Filter):
                verdict = op.keep(doc)
                st.seconds += time.perf_counter() - start
                if not verdict.keep:
                    trace.remove(st, doc, verdict.reason, original)
                    break
            else:
                new = op.map(doc)  # type: ignore[attr-defined]
                st.seconds += time.perf_counter() - start
                trace.change(st, doc, new)
                doc = new
            st.docs_out += 1
        else:
            yield doc


def apply_global(
    docs: Iterable[Document], step: int, name: str, op: GlobalStep, trace: Trace
) -> Iterator[Document]:
    """Run a GlobalStep over the whole stream; records it swallowed are reported, not lost.

    It keeps every input document until the step has answered for it, which
    the global stage already assumes fits in one process (see runner).
    """
    st = trace.stats_for(step, op, name)
    pending: dict[str, Document] = {}

    def feed() -> Iterator[Document]:
        for doc in docs:
            st.docs_in += 1
            # A copy: a step that edits meta in place must still show as a change.
            pending[doc.id] = Document(doc.id, dict(doc.fields), dict(doc.meta))
            yield doc

    start = time.perf_counter()
    for doc, verdict in op.run(feed()):
        before = pending.pop(doc.id, None)
        if before is None:
            st.added += 1
        else:
            trace.change(st, before, doc)
        if verdict.keep:
            st.docs_out += 1
            yield doc
        else:
            trace.remove(st, doc, verdict.reason, before)
    for doc in pending.values():
        trace.remove(st, doc, f"{name} returned no verdict for this record")
    st.seconds += time.perf_counter() - start
