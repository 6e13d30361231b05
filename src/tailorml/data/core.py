"""The document every data operator sees, and the three operator kinds.

Modelled on datatrove: a kind base does the streaming, the statistics and the
trace of what was removed or changed once, so an operator implements one
method:

- ``Mapper.map(doc) -> doc``: return the (possibly changed) document;
- ``Filter.keep(doc) -> Verdict``: keep it, or drop it with a reason;
- ``GlobalStep.run(docs) -> iterator of (doc, Verdict)``: sees the whole
  stream (deduplication, decontamination, label quality) and runs as its own
  stage in a pipeline;
- ``ShardedGlobalStep``: a GlobalStep that drops records and can also run as
  ``summarize`` per shard, an optional parallel ``merge``, ``decide`` once
  over the summaries, then a per-shard drop, so the workers share the work
  (near-dedup).

Operators register with ``@register("data_op", "name")`` and take their
parameters as a pydantic model ``Params`` (``extra="forbid"``), which is how
a recipe's YAML is validated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

# Which fields of a record hold free text that text operators act on.
TEXT_FIELDS = ("text", "prompt", "completion", "anchor", "positive", "negative", "content")
_NESTED = (dict, list)


@dataclass(slots=True)
class Document:
    """One record flowing through a pipeline.

    ``fields`` is the record as read (for example ``{"text", "label"}`` or
    ``{"messages": [...]}``); ``meta`` carries what operators learned about it
    (language, scores, source file and line).
    """

    id: str
    fields: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All free text of the record joined by newlines (what filters and dedup look at)."""
        fields = self.fields
        text = fields.get("text")
        # Fast path for the most common record, a lone "text" beside flat fields (id, label):
        # every operator reads this property, and the generic walk costs ~1 us a call.
        if type(text) is str:
            for key, value in fields.items():
                if key != "text" and (key in TEXT_FIELDS or isinstance(value, _NESTED)):
                    break
            else:
                return text
        return "\n".join(t for _, t in iter_texts(fields))

    def map_texts(self, fn: Any) -> Document:
        """A copy whose every free-text field went through ``fn``."""
        return Document(self.id, _map_fields(self.fields, fn), dict(self.meta))


def iter_texts(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(path, text)`` for every free-text field in a record, chat messages included."""
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if key in TEXT_FIELDS and isinstance(item, str):
                yield sub, item
            elif isinstance(item, dict | list):
                yield from iter_texts(item, sub)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from iter_texts(item, f"{path}[{i}]")


def _map_fields(value: Any, fn: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: fn(v) if k in TEXT_FIELDS and isinstance(v, str) else _map_fields(v, fn)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_map_fields(v, fn) for v in value]
    return value


@dataclass(slots=True, frozen=True)
class Verdict:
    """An operator's decision on one document; ``reason`` is shown to the user when dropped."""

    keep: bool
    reason: str = ""

    @classmethod
    def ok(cls) -> Verdict:
        return _KEEP

    @classmethod
    def drop(cls, reason: str) -> Verdict:
        return cls(False, reason)


_KEEP = Verdict(True)


# What a parameter that names a server resource points at (DESIGN.md, "The trust boundary").
# A library trusts its caller, so operators take paths, URLs and names as they are; the
# platform reads these marks to decide what a tenant may set and how it is resolved:
#   file     a file path; a tenant names one of its uploaded files by id
#   model    a model/tokenizer folder, catalog name or hub id; a tenant names a catalog
#            model or one of its own fine-tuned models
#   package  an installed Python package (a spaCy pipeline); a tenant names an installed one
#   url      an endpoint the server calls; allowed, through the guarded outbound client
#   env      an environment variable name; never tenant-settable
#   policy   what the operator decides (outbound allow-lists); never tenant-settable
ResourceKind = Literal["file", "model", "package", "url", "env", "policy"]


def resource(kind: ResourceKind, default: Any = ..., **kwargs: Any) -> Any:
    """A ``Params`` field that names a server resource of ``kind`` (a pydantic ``Field``)."""
    return Field(default, json_schema_extra={"resource": kind}, **kwargs)


def resource_params(params: type[BaseModel]) -> dict[str, ResourceKind]:
    """The fields of a ``Params`` model that name server resources, with their kind."""
    out: dict[str, ResourceKind] = {}
    for name, info in params.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and "resource" in extra:
            out[name] = cast(ResourceKind, extra["resource"])
    return out


# Every operator's ``Params``: unknown keys are errors (a typo must not be ignored), and the
# docstring under a field is its description, which ``tailor data ops`` and the API show.
PARAMS_CONFIG = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def shown_name(path: str | Path) -> str:
    """How outputs and messages a run's user may see name a file: its last component only.

    A server path (a stored upload, a model folder the platform resolved) never
    leaves the server (DESIGN.md, "The trust boundary").
    """
    return Path(path).name or str(path)


class NoParams(BaseModel):
    model_config = PARAMS_CONFIG


class Operator:
    """Base of every operator. ``name`` is the registered name; ``Params`` validates config."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, params: BaseModel | None = None, **kwargs: Any):
        self.params = params if params is not None else self.Params(**kwargs)

    def setup(self) -> None:
        """Load heavy resources (models, tables) once per process, before the first document."""


class Mapper(Operator):
    def map(self, doc: Document) -> Document:
        raise NotImplementedError


class Filter(Operator):
    def keep(self, doc: Document) -> Verdict:
        raise NotImplementedError


class GlobalStep(Operator):
    """An operator that must see every document (it runs as a separate pipeline stage)."""

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        raise NotImplementedError


class ShardedGlobalStep(GlobalStep):
    """A dropping GlobalStep the runner splits into phases, as datatrove does for dedup.

    ``summarize`` runs per shard, in the workers, and writes a compact summary
    of the shard's records under ``stem`` (signatures, hashes and ids: no
    record bodies). If ``merge_tasks()`` is above 0, that many ``merge``
    tasks then run in the workers over every shard's summary (near-dedup:
    one per LSH band, merging sorted runs into candidate pairs beside the
    stems). ``decide`` runs once and yields ``(shard, position, reason)`` of
    the records to drop, in ascending shard, then position order, so the
    runner writes them as they come instead of holding them; it may read
    records back with ``docs_of(shard)``. The runner then streams each
    shard again in the workers and drops those positions. Rows are ordered
    by shard, then position, which is what "first occurrence" means here.
    ``run`` stays the in-memory form for direct library use.
    """

    def summarize(self, docs: Iterable[Document], stem: Path) -> None:
        raise NotImplementedError

    def merge_tasks(self) -> int:
        """How many ``merge`` tasks run between ``summarize`` and ``decide`` (0: no merge phase)."""
        return 0

    def merge(self, stems: list[Path], part: int, parts: int) -> None:
        """Task ``part`` of ``parts`` of the merge phase, over every shard's summary."""
        raise NotImplementedError

    def decide(
        self, stems: list[Path], docs_of: Callable[[int], Iterator[Document]]
    ) -> Iterator[tuple[int, int, str]]:
        raise NotImplementedError
