"""Readers: turn input files into a stream of ``Document`` in bounded memory.

Supported: JSONL, a JSON array, CSV/TSV, Parquet (read batch by batch),
plain text (one document per file or per line) and HTML pages (one document
per file, ``fields = {"html", "url"?}``; the ``html_to_text`` operator turns
it into text), each optionally gzipped. Every document gets the id
``<file stem>:<line>`` and ``meta = {"source", "line"}``, where ``source`` is
the file's name relative to the folder it was found in (never a server
path); a line that does not parse becomes a document with
``meta["read_error"]`` so the runner can report it instead of losing it.

What a reader holds is capped by ``ReadLimits``, which whoever runs the
pipeline sets (they are not ``ReadOptions``: a tenant writes ``read:``). A
record over ``max_record_bytes`` is reported as a ``read_error`` and skipped
without being held (a JSONL line is read in bounded pieces up to its
newline); a compressed file that expands past ``max_decompressed_bytes``, or
more than ``max_ratio`` times its compressed size once past a floor, stops
with a ``FileFormatError`` naming the file.

JSONL lines are parsed with orjson (four times faster than ``json`` on short
records); a line orjson refuses goes to ``json`` for its verdict, so NaN and
lone surrogates still read as before. Integers beyond 64 bits read as floats,
as in orjson and JavaScript.

Sharding happens here, before decoding: records are numbered across all
inputs in order and shard ``rank`` of ``world`` keeps every ``world``-th
chunk of ``chunk`` records, so a skipped JSONL line is never parsed and a
skipped HTML page is never opened.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from tailorml.data.core import Document
from tailorml.data.limits import (
    ReadLimits,
    RowTooLarge,
    bounded_lines,
    open_binary,
    read_capped,
    row_bytes,
    skip_line,
    too_large,
)
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
    batch_size: int = Field(
        1024, ge=1, le=65536, description="Rows per Parquet batch (bounds memory)."
    )


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


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input file: where it is, the name outputs and messages give it, its id prefix."""

    path: Path
    name: str
    """Relative to the folder it was found in; the file name when given as a file."""
    stem: str


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


def _given(path: Path) -> str:
    # An absolute path is the server's business (a stored upload); a relative one the caller typed.
    return path.name if path.is_absolute() else str(path)


def input_files(paths: list[Path], fmt: Format = "auto") -> list[InputFile]:
    """Every input file with its name and id prefix; folders are walked in sorted order.

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
                problems.append(f"{_given(path)}: the folder holds no readable file")
            files.extend((p, path) for p in found)
        elif path.is_file():
            if not _format_of(path, fmt):
                problems.append(
                    f"{_given(path)}: unknown format; name it .jsonl/.csv/.parquet/... "
                    "or set read.format"
                )
            files.append((path, path.parent))
        else:
            problems.append(f"{_given(path)}: no such file or folder")
    if not files and not problems:
        problems.append("no input given")
    if problems:
        raise InvalidRequestError("Cannot read the inputs: " + "; ".join(problems), param="input")
    names = [p.relative_to(root).as_posix() for p, root in files]
    stems = [_stem(p) for p, _ in files]
    stems = [
        Path(name).with_name(stem).as_posix() if stems.count(stem) > 1 else stem
        for name, stem in zip(names, stems, strict=True)
    ]
    # Two files of one name given from two folders: still one prefix, so number the repeats.
    seen: dict[str, int] = {}
    out = []
    for (path, _), name, stem in zip(files, names, stems, strict=True):
        seen[stem] = seen.get(stem, 0) + 1
        out.append(InputFile(path, name, stem if seen[stem] == 1 else f"{stem}~{seen[stem]}"))
    return out


def expand_inputs(paths: list[Path], fmt: Format = "auto") -> list[tuple[Path, str]]:
    """Every input file with the id prefix of its documents (see ``input_files``)."""
    return [(f.path, f.stem) for f in input_files(paths, fmt)]


def _doc(stem: str, name: str, line: int, value: Any, options: ReadOptions) -> Document:
    meta: dict[str, Any] = {"source": name, "line": line}
    if not isinstance(value, dict):
        meta["read_error"] = f"expected a JSON object, got {type(value).__name__}"
        return Document(f"{stem}:{line}", {"raw": value}, meta)
    fields = dict(value)
    carried = fields.pop(META_KEY, None)
    if isinstance(carried, str):  # Parquet keeps it as a JSON string (see writers)
        carried, reason = _json_verdict(carried.encode())
        if reason:
            meta["read_error"] = f"{META_KEY} is {reason}"
            return Document(f"{stem}:{line}", fields, meta)
    doc_id = f"{stem}:{line}"
    if isinstance(carried, dict):
        carried = dict(carried)
        doc_id = str(carried.pop("id", doc_id))
        meta = carried
    for old, new in options.rename.items():
        if old in fields:
            fields[new] = fields.pop(old)
    return Document(doc_id, fields, meta)


def _bad(stem: str, name: str, line: int, raw: str | bytes, reason: str) -> Document:
    if isinstance(raw, bytes):
        raw = raw[:8000].decode("utf-8", "replace")
    meta = {"source": name, "line": line, "read_error": reason}
    return Document(f"{stem}:{line}", {"raw": raw[:2000]}, meta)


def _json_verdict(line: bytes) -> tuple[Any, str]:
    """``(value, "")``, or ``(None, reason)``: what ``json`` says of a line orjson refused."""
    try:
        return json.loads(line), ""
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at column {exc.colno})"
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 ({exc.reason})"
    except RecursionError:  # orjson stops at 1024 levels, json at the interpreter's limit
        return None, "nested too deeply (over 1000 levels)"


def _read_jsonl(
    f: InputFile, o: ReadOptions, take: Callable[[], bool], limits: ReadLimits
) -> Iterator[Document]:
    cap, stem, name, loads = limits.max_record_bytes, f.stem, f.name, orjson.loads
    with open_binary(f.path, f.name, limits) as fh:
        readline = fh.readline
        n = 0
        while True:
            n += 1
            line = readline(cap + 1)
            if not line:
                return
            if len(line) > cap and not line.endswith(b"\n"):
                skip_line(fh)
                if take():
                    yield _bad(stem, name, n, line, too_large("the line", cap))
                continue
            if line.isspace() or not take():
                continue
            try:
                value = loads(line)
            except orjson.JSONDecodeError:
                value, reason = _json_verdict(line)
                if reason:
                    yield _bad(stem, name, n, line, reason)
                    continue
            yield _doc(stem, name, n, value, o)


def _read_json(
    f: InputFile, o: ReadOptions, take: Callable[[], bool], limits: ReadLimits
) -> Iterator[Document]:
    # A JSON array cannot be streamed with the standard library; such files are small exports.
    with open_binary(f.path, f.name, limits) as fh:
        raw = read_capped(fh, limits.max_json_bytes)
    if raw is None:
        raise FileFormatError(
            f"{f.name} is over {limits.max_json_bytes} bytes; a JSON file is read whole, so "
            "convert it to JSONL (one record per line), which streams."
        )
    try:
        values = orjson.loads(raw)
    except orjson.JSONDecodeError:
        values, reason = _json_verdict(raw)
        if reason:
            raise FileFormatError(f"{f.name} is not valid JSON: {reason}; use JSONL.") from None
    del raw
    for i, value in enumerate(values if isinstance(values, list) else [values], start=1):
        if take():
            yield _doc(f.stem, f.name, i, value, o)


def _read_csv(
    f: InputFile, o: ReadOptions, take: Callable[[], bool], limits: ReadLimits, tsv: bool
) -> Iterator[Document]:
    cap, stem, name = limits.max_record_bytes, f.stem, f.name
    # Process-wide, but every reader sets it before reading; the default (128 KiB) is too small.
    csv.field_size_limit(cap)
    with io.TextIOWrapper(open_binary(f.path, f.name, limits), encoding="utf-8", newline="") as fh:
        pending = [0]
        # GLUE-style TSV files are unquoted: a stray quote must stay text, not open a field.
        quoting = csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL
        rows = csv.reader(
            bounded_lines(fh, cap, pending), delimiter="\t" if tsv else ",", quoting=quoting
        )
        names = o.columns
        first = 1
        try:
            if o.header:
                header = next(rows, None)
                pending[0] = 0
                names = names or header
                first = rows.line_num + 1
            if not names:
                raise FileFormatError(f"{name} has no header; give read.columns.")
            for row in rows:
                pending[0] = 0
                line, first = first, rows.line_num + 1
                if not row or not take():
                    continue
                if len(row) != len(names):
                    reason = f"expected {len(names)} columns ({', '.join(names)}), got {len(row)}"
                    yield _bad(stem, name, line, "\t".join(row), reason)
                    continue
                yield _doc(stem, name, line, dict(zip(names, row, strict=True)), o)
        except (RowTooLarge, csv.Error, UnicodeDecodeError) as exc:
            # The reader cannot find the next row's start reliably after this: stop, and say so.
            why = (
                too_large("a row", cap)
                if isinstance(exc, RowTooLarge)
                else f"not valid UTF-8 ({exc.reason})"
                if isinstance(exc, UnicodeDecodeError)
                else f"not valid CSV ({exc})"
            )
            if take():
                yield _bad(stem, name, first, "", f"{why}; the rest of the file was skipped")


def _read_parquet(
    f: InputFile, o: ReadOptions, take: Callable[[], bool], limits: ReadLimits
) -> Iterator[Document]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    cap, stem, name = limits.max_record_bytes, f.stem, f.name
    packed = max(f.path.stat().st_size, 1)

    def check(expanded: int) -> None:
        if expanded > limits.max_decompressed_bytes or (
            expanded > limits.ratio_floor_bytes and expanded > limits.max_ratio * packed
        ):
            raise FileFormatError(
                f"{name} expands to more than {min(expanded, limits.max_decompressed_bytes)} "
                f"bytes ({expanded / packed:.0f} times its size) when decoded: split it into "
                "smaller files (the limit is the operator's, ReadLimits)."
            )

    try:
        pf = pq.ParquetFile(f.path)
    except pa.ArrowException as exc:  # its message names the full path
        why = str(exc).replace(str(f.path), name)
        raise FileFormatError(f"{name} is not a readable Parquet file ({why}).") from exc
    meta = pf.metadata
    check(sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)))
    row, expanded = 0, 0
    for batch in pf.iter_batches(batch_size=o.batch_size):
        mask = [take() for _ in range(batch.num_rows)]
        sizes = np.zeros(batch.num_rows, np.int64)
        for column in batch.columns:
            sizes += row_bytes(column)
        expanded += int(sizes.sum())
        check(expanded)  # dictionary-encoded values can expand far beyond the file's own sizes
        if any(mask):
            over = (sizes > cap).tolist()
            small = [keep and not big for keep, big in zip(mask, over, strict=True)]
            # Only the rows within the cap become Python objects; the others are reported.
            values = iter(batch.filter(pa.array(small)).to_pylist() if any(small) else ())
            for i, keep in enumerate(mask):
                if keep:
                    yield (
                        _bad(stem, name, row + i + 1, "", too_large("the row", cap))
                        if over[i]
                        else _doc(stem, name, row + i + 1, next(values), o)
                    )
        row += batch.num_rows


def _read_text(
    f: InputFile, o: ReadOptions, take: Callable[[], bool], limits: ReadLimits
) -> Iterator[Document]:
    cap, stem, name = limits.max_record_bytes, f.stem, f.name
    with open_binary(f.path, f.name, limits) as fh:
        if o.text_unit == "file":
            if not take():
                return
            raw = read_capped(fh, cap)
            if raw is None:
                yield _bad(stem, name, 1, "", too_large("the file", cap))
                return
            try:
                yield _doc(stem, name, 1, {"text": raw.decode("utf-8")}, o)
            except UnicodeDecodeError as exc:
                yield _bad(stem, name, 1, raw, f"not valid UTF-8 ({exc.reason})")
            return
        n = 0
        while True:
            n += 1
            line = fh.readline(cap + 1)
            if not line:
                return
            if len(line) > cap and not line.endswith(b"\n"):
                skip_line(fh)
                if take():
                    yield _bad(stem, name, n, line, too_large("the line", cap))
                continue
            if line.isspace() or not take():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield _bad(stem, name, n, line, f"not valid UTF-8 ({exc.reason})")
                continue
            if text.strip():
                yield _doc(stem, name, n, {"text": text.rstrip("\r\n")}, o)


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
    f: InputFile, o: ReadOptions, take: Callable[[], bool], limits: ReadLimits
) -> Iterator[Document]:
    if not take():
        return
    with open_binary(f.path, f.name, limits) as fh:
        raw = read_capped(fh, limits.max_record_bytes)
    if raw is None:
        yield _bad(f.stem, f.name, 1, "", too_large("the page", limits.max_record_bytes))
        return
    html = raw.decode("utf-8", errors="replace")
    fields: dict[str, Any] = {"html": html}
    url = page_url(html)
    if url:
        fields["url"] = url
    yield _doc(f.stem, f.name, 1, fields, o)


def read_documents(
    paths: list[Path],
    options: ReadOptions | None = None,
    shard: Shard | None = None,
    *,
    limits: ReadLimits | None = None,
) -> Iterator[Document]:
    """Stream the documents of ``paths`` (files or folders) that belong to ``shard``.

    ``limits`` (default ``ReadLimits()``) caps what a record and a compressed
    file may hold; see the module docstring for what happens past them.
    """
    o = options or ReadOptions()
    lim = limits or ReadLimits()
    take = (shard or Shard()).selector()
    for f in input_files(paths, o.format):
        fmt = _format_of(f.path, o.format)
        try:
            if fmt in ("csv", "tsv"):
                yield from _read_csv(f, o, take, lim, tsv=fmt == "tsv")
            else:
                reader = {
                    "jsonl": _read_jsonl,
                    "json": _read_json,
                    "parquet": _read_parquet,
                    "text": _read_text,
                    "html": _read_html,
                }[fmt]
                yield from reader(f, o, take, lim)
        except (OSError, EOFError, zlib.error) as exc:
            # Their messages carry the file's full path; the user sees its name and the reason.
            raise FileFormatError(f"{f.name} cannot be read: {_why(exc)}.") from exc


def _why(exc: BaseException) -> str:
    if isinstance(exc, gzip.BadGzipFile):
        return "it is not a gzip file, though its name ends in .gz"
    if isinstance(exc, EOFError):
        return "the compressed file is truncated (an interrupted upload?)"
    if isinstance(exc, zlib.error):
        return "the compressed data is corrupt"
    return getattr(exc, "strerror", None) or type(exc).__name__
