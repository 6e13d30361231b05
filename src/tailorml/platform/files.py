"""The files service: store an upload atomically, validate it, list, read and delete.

A fine-tuning file is validated on upload: every line is parsed against the
formats of ``tailorml.records`` and every bad line is reported with its
number and reason. A file that fails validation is not kept, so nothing
half-valid can ever reach a job. Names and purposes are checked against
their columns before anything is stored, so no database answers for them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from sqlalchemy.orm import Session

from tailorml.errors import ConflictError, FileFormatError, InvalidRequestError
from tailorml.platform.db.models import File, new_id
from tailorml.platform.scoping import get_owned, owned
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage
from tailorml.records import read_records, summarize

PURPOSES = ("fine-tune", "batch", "batch_output", "assistants", "user_data", "evals")
# Files only the service writes (a fine-tuning job's step metrics); uploads cannot take them.
OUTPUT_PURPOSES = ("fine-tune-results",)
FILENAME_MAX = 255  # the files.filename column, in characters (PostgreSQL counts characters)
# Bidirectional overrides and isolates make a name read differently than it is
# ("invoice\u202eLSX.exe"); no file name needs them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_filename(name: str | None) -> str:
    """The name a file is stored under: its base name, checked for length and characters.

    A client may send a path (``C:\\data\\train.jsonl``, ``../../x``); only the last
    part is kept, as browsers do. Control characters, lone surrogates and bidirectional
    overrides are refused rather than changed, so the stored name is the one the client sent.
    """
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip(" ")
    if base in ("", ".", ".."):
        raise InvalidRequestError(
            "The upload has no file name; send the file part with a filename, as in "
            "`-F file=@train.jsonl`.",
            param="file",
        )
    bad = [c for c in base if unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI_CONTROLS]
    if bad:
        codes = ", ".join(sorted({f"U+{ord(c):04X}" for c in bad}))
        raise InvalidRequestError(
            f"The file name has control characters ({codes}); rename the file.", param="file"
        )
    if len(base) > FILENAME_MAX:
        raise InvalidRequestError(
            f"The file name is {len(base)} characters long; the limit is {FILENAME_MAX}. "
            "Rename the file.",
            param="file",
        )
    return base


def create_file(
    session: Session,
    *,
    tenant_id: str,
    storage: LocalStorage,
    filename: str | None,
    purpose: str,
    chunks: Iterable[bytes],
    max_bytes: int,
    output: bool = False,
) -> File:
    """Store a file of the tenant; ``output`` is a file the service writes itself."""
    if purpose not in PURPOSES and not (output and purpose in OUTPUT_PURPOSES):
        raise InvalidRequestError(
            f"purpose must be one of {', '.join(PURPOSES)}; got {purpose[:64]!r}.",
            param="purpose",
        )
    filename = clean_filename(filename)
    file_id = new_id("file-")
    key = f"files/{tenant_id}/{file_id}"
    size, sha = storage.put(key, chunks, max_bytes=max_bytes)
    row = File(
        id=file_id,
        tenant_id=tenant_id,
        filename=filename,
        purpose=purpose,
        bytes=size,
        sha256=sha,
        status="uploaded",
        storage_key=key,
    )
    if purpose == "fine-tune":
        if not filename.lower().endswith(".jsonl"):
            storage.delete(key)
            raise FileFormatError(
                f"Fine-tuning files must be JSONL (one JSON object per line); {filename!r} is not a .jsonl file.",
                param="file",
            )
        try:
            summary = summarize(read_records(storage.path(key)))
        except FileFormatError:
            storage.delete(key)
            raise
        row.status = "processed"
        row.task = summary.task
        row.n_records = summary.n_records
    session.add(row)
    session.flush()
    return row


def get_file(session: Session, *, tenant_id: str, file_id: str, param: str | None = None) -> File:
    return get_owned(session, File, file_id, tenant_id=tenant_id, what="file", param=param)


def list_files(session: Session, *, tenant_id: str, purpose: str | None = None) -> list[File]:
    query = owned(File, tenant_id=tenant_id)
    if purpose:
        query = query.where(File.purpose == purpose)
    return list(session.scalars(query.order_by(File.created_at.desc(), File.id)))


def delete_file(
    session: Session, *, tenant_id: str, storage: LocalStorage, file_id: str, settings: Settings
) -> None:
    """Delete a file and, first, what datasets derived from it (``datasets.forget_input``)."""
    from tailorml.platform.datasets import forget_input
    from tailorml.platform.db.models import Job
    from tailorml.platform.jobs.queue import ACTIVE

    row = get_file(session, tenant_id=tenant_id, file_id=file_id)
    for job in session.scalars(owned(Job, tenant_id=tenant_id).where(Job.status.in_(ACTIVE))):
        if file_id in (job.spec.get("training_file"), job.spec.get("validation_file")):
            raise ConflictError(
                f"File {file_id} is used by the active job {job.id}; cancel it or wait for it to end.",
                param="file_id",
            )
    forget_input(session, tenant_id=tenant_id, settings=settings, storage=storage, file_id=file_id)
    session.delete(row)
    session.flush()
    storage.delete(row.storage_key)


def file_object(row: File) -> dict[str, object]:
    """OpenAI's File object, with TailorML's validation summary under ``status_details``."""
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": row.created_at,
        "filename": row.filename,
        "purpose": row.purpose,
        "status": row.status,
        "status_details": row.status_details,
        "expires_at": None,
        "task": row.task,
        "n_records": row.n_records,
    }
