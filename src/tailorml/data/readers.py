"""Readers: turn input files into a stream of ``Document`` in bounded memory.

Supported: JSONL, a JSON array, CSV/TSV, Parquet (read batch by batch),
plain text (one document per file or per line) and HTML pages (one document
per file, ``fields = {"html", "url"?}``; the ``html_to_text`` operator turns
it into text). Every document gets the id ``<file stem>:<line>`` and
``meta = {"source", "line"}``; a line that does not parse becomes a document
with ``meta["read_error"]`` so the runner can report it instead of losing it.

Sharding happens here, before decoding: records are numbered across all
inputs in order and shard ``rank`` of ``world`` keeps every ``world``-th
chunk of ``chunk`` records, so a skipped JSONL line is never parsed and a
skipped HTML page is never opened.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tailorml.data.core import Document
from tailorml.errors import FileFormatError, InvalidRequestError

Format = Literal["auto", "jsonl", "json", "csv", "tsv", "parquet", "text", "html"]
SUFFIXES: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".txt": "text",
    ".md": "text",
    ".html": "html",
    ".htm": "html",
}
META_KEY = "_meta"  # where writers keep a document's id and meta, so outputs read back losslessly


class ReadOptions(BaseModel):
    """How to read input files; a recipe may carry these under ``read:``."""

    model_config = ConfigDict(extra="forbid")

    format: Format = Field("auto", description="File format; auto picks it from the suffix.")
    columns: list[str] | None = Field(None, description="Column names of a CSV/TSV file.")
    header: bool = Field(True, description="Whether a CSV/TSV file starts with a header row.")
    text_unit: Literal["file", "line"] = Field(
        "file", description="Plain text: a doc per file or per line."
    )
    rename: dict[str, str] = Field(default_factory=dict, description="Rename fields, old: new.")
    batch_size: int = Field(1024, ge=1, description="Rows per Parquet batch (bounds memory).")


@dataclass(frozen=True, slots=True)
class Shard:
    """Which records one worker takes: chunk ``k`` goes to rank ``k % world``."""

    rank: int = 0
    world: int = 1
    chunk: int = 1000

    def selector(self) -> Callable[[], bool]:
        """A counter that says, record after record, whether this shard keeps it."""
        counter = itertools.count()
        if self.world == 1:
            return lambda: next(counter) >= 0
        return lambda: (next(counter) // self.chunk) % self.world == self.rank


def _format_of(path: Path, fmt: Format) -> str:
    if fmt != "auto":
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return SUFFIXES.get(suffixes[-1] if suffixes else "", "")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in reversed(path.suffixes):
        name = name.removesuffix(suffix)
    return name or path.name


def expand_inputs(paths: list[Path], fmt: Format = "auto") -> list[tuple[Path, str]]:
    """Every input file with the id prefix of its documents; folders are walked in sorted order.

    All missing paths and unknown formats are reported together. The prefix is
    the file stem, or the path under its folder when two inputs share a stem.
    """
    problems: list[str] = []
    files: list[tuple[Path, Path]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _format_of(p, fmt))
            if not found:
                problems.append(f"{path}: the folder holds no readable file")
            files.extend((p, path) for p in found)
        elif path.is_file():
            if not _format_of(path, fmt):
                problems.append(
                    f"{path}: unknown format; name it .jsonl/.csv/.parquet/... or set read.format"
                )
            files.append((path, path.parent))
        else:
            problems.append(f"{path}: no such file or folder")
    if not files and not problems:
        problems.append("no input given")
    if problems:
        raise InvalidRequestError("Cannot read the inputs: " + "; ".join(problems), param="input")
    stems = [_stem(p) for p, _ in files]
    out = []
    for (path, root), stem in zip(files, stems, strict=True):
        if stems.count(stem) > 1:
            rel = path.relative_to(root) if path.is_relative_to(root) else path
            stem = str(rel.with_name(_stem(path)))
        out.append((path, stem))
    return out


def _open_text(path: Path):  # noqa: ANN202 - a text file object
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _doc(stem: str, path: Path, line: int, value: Any, options: ReadOptions) -> Document:
    meta: dict[str, Any] = {"source": str(path), "line": line}
    if not isinstance(value, dict):
        meta["read_error"] = f"expected a JSON object, got {type(value).__name__}"
        return Document(f"{stem}:{line}", {"raw": value}, meta)
    fields = dict(value)
    carried = fields.pop(META_KEY, None)
    if isinstance(carried, str):
        carried = json.loads(carried)
    doc_id = f"{stem}:{line}"
    if isinstance(carried, dict):
        carried = dict(carried)
        doc_id = str(carried.pop("id", doc_id))
        meta = carried
    for old, new in options.rename.items():
        if old in fields:
            fields[new] = fields.pop(old)
    return Document(doc_id, fields, meta)


def _bad(stem: str, path: Path, line: int, raw: str, reason: str) -> Document:
    meta = {"source": str(path), "line": line, "read_error": reason}
    return Document(f"{stem}:{line}", {"raw": raw[:2000]}, meta)


def _read_jsonl(
    path: Path, stem: str, o: ReadOptions, take: Callable[[], bool]
) -> Iterator[Document]:
    with _open_text(path) as fh:
        n = 0
        while True:
            n += 1
            try:
                line = fh.readline()
            except UnicodeDecodeError as exc:
                if take():
                    yield _bad(
                        stem, path, n, "", f"not valid UTF-8 ({exc.reason}); rest of file skipped"
                    )
                return
            if not line:
                return
            if not line.strip() or not take():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield _bad(stem, path, n, line, f"invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            yield _doc(stem, path, n, value, o)


def _read_json(
    path: Path, stem: str, o: ReadOptions, take: Callable[[], bool]
) -> Iterator[Document]:
    # A JSON array cannot be streamed with the standard library; such files are small exports.
    with _open_text(path) as fh:
        try:
            values = json.load(fh)
        except json.JSONDecodeError as exc:
            raise FileFormatError(
                f"{path.name} is not valid JSON ({exc.msg}, line {exc.lineno}); "
                "use JSONL for large files."
            ) from exc
    for i, value in enumerate(values if isinstance(values, list) else [values], start=1):
        if take():
            yield _doc(stem, path, i, value, o)


def _read_csv(
    path: Path, stem: str, o: ReadOptions, take: Callable[[], bool], tsv: bool
) -> Iterator[Document]:
    with _open_text(path) as fh:
        # GLUE-style TSV files are unquoted: a stray quote must stay text, not open a field.
        quoting = csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL
        rows = csv.reader(fh, delimiter="\t" if tsv else ",", quoting=quoting)
        names = o.columns
        first = 1
        if o.header:
            header = next(rows, None)
            names = names or header
            first = rows.line_num + 1
        if not names:
            raise FileFormatError(f"{path.name} has no header; give read.columns.")
        for row in rows:
            line, first = first, rows.line_num + 1
            if not row or not take():
                continue
            if len(row) != len(names):
                reason = f"expected {len(names)} columns ({', '.join(names)}), got {len(row)}"
                yield _bad(stem, path, line, "\t".join(row), reason)
                continue
            yield _doc(stem, path, line, dict(zip(names, row, strict=True)), o)


def _read_parquet(
    path: Path, stem: str, o: ReadOptions, take: Callable[[], bool]
) -> Iterator[Document]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=o.batch_size):
        mask = [take() for _ in range(batch.num_rows)]
        if any(mask):
            numbers = [row + i + 1 for i, keep in enumerate(mask) if keep]
            values = batch.filter(pa.array(mask)).to_pylist()
            for n, value in zip(numbers, values, strict=True):
                yield _doc(stem, path, n, value, o)
        row += batch.num_rows


def _read_text(
    path: Path, stem: str, o: ReadOptions, take: Callable[[], bool]
) -> Iterator[Document]:
    with _open_text(path) as fh:
        if o.text_unit == "file":
            if take():
                yield _doc(stem, path, 1, {"text": fh.read()}, o)
            return
        for n, line in enumerate(fh, start=1):
            if line.strip() and take():
                yield _doc(stem, path, n, {"text": line.rstrip("\r\n")}, o)


class _CanonicalUrl(HTMLParser):
    """Finds a page's own URL (canonical link or og:url) in its head."""

    def __init__(self) -> None:
        super().__init__()
        self.url: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "link" and (a.get("rel") or "").lower() == "canonical" and a.get("href"):
            self.url = self.url or a["href"]
        elif tag == "meta" and a.get("property") == "og:url" and a.get("content"):
            self.url = self.url or a["content"]


def page_url(html: str) -> str | None:
    """The canonical URL a page declares in its ``<head>``, if any."""
    parser = _CanonicalUrl()
    end = html.lower().find("</head>")
    parser.feed(html if end < 0 else html[:end])
    return parser.url


def _read_html(
    path: Path, stem: str, o: ReadOptions, take: Callable[[], bool]
) -> Iterator[Document]:
    if not take():
        return
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        html = fh.read()
    fields: dict[str, Any] = {"html": html}
    url = page_url(html)
    if url:
        fields["url"] = url
    yield _doc(stem, path, 1, fields, o)


def read_documents(
    paths: list[Path], options: ReadOptions | None = None, shard: Shard | None = None
) -> Iterator[Document]:
    """Stream the documents of ``paths`` (files or folders) that belong to ``shard``."""
    o = options or ReadOptions()
    take = (shard or Shard()).selector()
    for path, stem in expand_inputs(paths, o.format):
        fmt = _format_of(path, o.format)
        if fmt in ("csv", "tsv"):
            yield from _read_csv(path, stem, o, take, tsv=fmt == "tsv")
        else:
            reader = {
                "jsonl": _read_jsonl,
                "json": _read_json,
                "parquet": _read_parquet,
                "text": _read_text,
                "html": _read_html,
            }[fmt]
            yield from reader(path, stem, o, take)
