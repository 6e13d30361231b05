"""The models a tenant can see and call: the base catalog plus its own fine-tuned models.

Serving resolves a public model id to a ``tailorml.serve.models.ModelRef``
through ``ModelResolver``: an ``ft:...`` id through the tenant's rows
(another tenant's id is simply not found), a catalog name through the model
cache. An unknown id is an error, never a silent fallback to a base model.

A job's checkpoints are models too, as with OpenAI: ``<fine_tuned_model>:ckpt-step-<N>``
(the ``fine_tuned_model_checkpoint`` of ``GET /v1/fine_tuning/jobs/{id}/checkpoints``) serves
the weights of step N while its folder is kept, and is listed with the tenant's models, so
a cancelled or failed job still leaves something to call.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tailorml.errors import ConflictError, InvalidRequestError, NotFoundError
from tailorml.platform.db.models import Checkpoint, Job, Model
from tailorml.platform.jobs.queue import ACTIVE
from tailorml.platform.scoping import owned
from tailorml.platform.settings import Settings


def _not_found(model_id: str) -> NotFoundError:
    return NotFoundError(
        f"The model `{model_id}` does not exist or you do not have access to it; "
        "list yours with GET /v1/models.",
        param="model",
        code="model_not_found",
    )


def list_models(session: Session, *, tenant_id: str) -> list[dict[str, Any]]:
    from tailorml.models.catalog import catalog

    data: list[dict[str, Any]] = [
        {
            "id": spec.name,
            "object": "model",
            "created": 0,
            "owned_by": "tailorml",
            "title": spec.title,
            "architecture": spec.architecture,
            "tasks": list(spec.tasks),
            "parameters": spec.parameters,
            "context_length": spec.context_length,
            "licence": spec.licence,
        }
        for spec in catalog()
    ]
    for row in session.scalars(owned(Model, tenant_id=tenant_id).order_by(Model.created_at)):
        data.append(model_object(row))
    data.extend(_checkpoint_objects(session, tenant_id=tenant_id))
    return data


CHECKPOINT_ID = re.compile(r"^(ft:.+):ckpt-step-(\d{1,9})$")


def checkpoint_model_id(fine_tuned_model: str, step: int) -> str:
    return f"{fine_tuned_model}:ckpt-step-{step}"


def _tenant_checkpoints(
    session: Session, *, tenant_id: str, step: int | None = None
) -> list[tuple[Checkpoint, Job]]:
    """The tenant's checkpoints whose folders still exist (training keeps the newest few)."""
    query = (
        select(Checkpoint, Job)
        .join(Job, Job.id == Checkpoint.job_id)
        .where(Job.tenant_id == tenant_id, Job.kind == "fine_tune")
        .order_by(Checkpoint.created_at, Checkpoint.step)
    )
    if step is not None:
        query = query.where(Checkpoint.step == step)
    return [(ck, job) for ck, job in session.execute(query).tuples() if Path(ck.path).is_dir()]


def _checkpoint_objects(session: Session, *, tenant_id: str) -> list[dict[str, Any]]:
    return [
        {
            "id": checkpoint_model_id(job.spec["fine_tuned_model"], ck.step),
            "object": "model",
            "created": ck.created_at,
            "owned_by": tenant_id,
            "base": job.spec.get("base") or job.spec.get("model"),
            "tasks": [job.spec.get("task")],
            "fine_tuning_job": job.id,
            "checkpoint_step": ck.step,
        }
        for ck, job in _tenant_checkpoints(session, tenant_id=tenant_id)
        if job.spec.get("fine_tuned_model")  # a job row written without a name has none
    ]


def _checkpoint_folder(session: Session, *, tenant_id: str, model_id: str) -> str | None:
    match = CHECKPOINT_ID.match(model_id)
    if match is None:
        return None
    name, step = match.group(1), int(match.group(2))
    for ck, job in _tenant_checkpoints(session, tenant_id=tenant_id, step=step):
        if job.spec.get("fine_tuned_model") == name:
            return ck.path
    return None


def model_object(row: Model) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "model",
        "created": row.created_at,
        "owned_by": row.tenant_id,
        "base": row.base,
        "tasks": [row.task],
        "fine_tuning_job": row.job_id,
    }


def get_model_object(session: Session, *, tenant_id: str, model_id: str) -> dict[str, Any]:
    for item in list_models(session, tenant_id=tenant_id):
        if item["id"] == model_id:
            return item
    raise _not_found(model_id)


def delete_model(
    session: Session, *, tenant_id: str, model_id: str, settings: Settings
) -> list[Path]:
    """Delete the model's row and its job's checkpoint rows; return the folders to remove
    once that is committed: the weights and the job's checkpoints, when they lie in the
    jobs folder (a folder the operator registered from elsewhere is not the tenant's to
    delete)."""
    from tailorml.platform.db.models import Checkpoint, Job

    row = session.get(Model, model_id)
    if row is None or row.tenant_id != tenant_id:
        raise _not_found(model_id)
    jobs_dir = settings.jobs_dir.resolve()
    folders = []
    if row.job_id:
        job = session.get(Job, row.job_id)
        if job is not None and job.status in ACTIVE:
            raise ConflictError(f"Model {model_id} still has an active job.")
        session.execute(delete(Checkpoint).where(Checkpoint.job_id == row.job_id))
        folders.append(jobs_dir / row.job_id)
    folders.append(Path(row.path).resolve())
    session.delete(row)
    return [f for f in folders if f.is_relative_to(jobs_dir) and f != jobs_dir]


def export_archive(
    session: Session, *, tenant_id: str, model_id: str, fmt: str, settings: Settings
) -> tuple[Path, str]:
    """A tar of the tenant's fine-tuned model (or kept checkpoint) in export format ``fmt``
    (``tailorml.models.export``) and its download name; built once, kept beside the job
    (deleting the model deletes it)."""
    from tailorml.models.export import archive, check_format, export_model
    from tailorml.models.manifest import read_manifest

    row = session.get(Model, model_id)
    folder: str | None
    if row is not None and row.tenant_id == tenant_id:
        folder, job_id = row.path, row.job_id
    else:
        folder = _checkpoint_folder(session, tenant_id=tenant_id, model_id=model_id)
        job_id = Path(folder).parent.name if folder else None
    if folder is None:
        if any(item["id"] == model_id for item in list_models(session, tenant_id=tenant_id)):
            raise InvalidRequestError(
                f"{model_id} is a base model of the catalog, not one of yours; only fine-tuned "
                "models (and their checkpoints) can be exported.",
                param="model",
            )
        raise _not_found(model_id)
    check_format(read_manifest(Path(folder)), fmt)  # refuse before any work
    where = settings.jobs_dir / job_id if job_id else settings.data_dir / "exports" / tenant_id
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id).strip("-")
    tar = where / "exports" / f"{safe}-{fmt}.tar"
    if not tar.is_file():  # two requests at once each build their own; the last rename wins
        build = where / "exports" / f".build-{uuid.uuid4().hex[:12]}" / f"{safe}-{fmt}"
        try:
            archive(export_model(Path(folder), fmt, build, name=model_id), tar)
        finally:
            shutil.rmtree(build.parent, ignore_errors=True)
    return tar, tar.name


class ModelResolver:
    """Public model ids to the serving engine's ``ModelRef``, cached per process (thread-safe).

    The tenant's row is still read on every call (one primary-key read in the
    caller's read session, which takes no lock), so a deleted model, or
    another tenant's, is not found at once whichever process changed it. What
    the cache saves is reading and checking the model's folder and manifest:
    an entry is stamped with the row's path and the manifest file's identity
    (inode, size, mtime), so a job that writes the model again, in the same
    folder or another, makes the next request read it afresh. A catalog base
    is materialised once and kept while its folder exists.
    """

    def __init__(self, settings: Settings, max_entries: int = 1024) -> None:
        self._settings = settings
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._refs: OrderedDict[str, tuple[object, Any]] = OrderedDict()

    def resolve(self, session: Session, *, tenant_id: str, model_id: str) -> Any:
        """The ``ModelRef`` for ``model_id`` as seen by this tenant, or ``NotFoundError``."""
        from tailorml.serve.models import ModelRef

        if model_id.startswith("ft:"):
            row = session.get(Model, model_id)
            path = row.path if row is not None and row.tenant_id == tenant_id else None
            if row is None:
                path = _checkpoint_folder(session, tenant_id=tenant_id, model_id=model_id)
            if path is None:
                self.forget(model_id)
                raise _not_found(model_id)
            stamp = _folder_stamp(path)
            ref = self._cached(model_id, stamp)
            if ref is None:
                ref = ModelRef.from_folder(model_id, Path(path))
                self._keep(model_id, stamp, ref)
            return ref
        ref = self._cached(model_id, "catalog")
        if ref is not None and ref.path.is_dir():
            return ref
        ref = _catalog_ref(self._settings, model_id)
        self._keep(model_id, "catalog", ref)
        return ref

    def forget(self, model_id: str) -> None:
        """Drop what is cached for ``model_id`` (it was deleted or replaced)."""
        with self._lock:
            self._refs.pop(model_id, None)

    def _cached(self, model_id: str, stamp: object) -> Any:
        if stamp is None:
            return None
        with self._lock:
            entry = self._refs.get(model_id)
            if entry is None or entry[0] != stamp:
                return None
            self._refs.move_to_end(model_id)
            return entry[1]

    def _keep(self, model_id: str, stamp: object, ref: Any) -> None:
        if stamp is None:
            return
        with self._lock:
            self._refs[model_id] = (stamp, ref)
            self._refs.move_to_end(model_id)
            while len(self._refs) > self._max_entries:
                self._refs.popitem(last=False)


def _folder_stamp(path: str) -> tuple[str, int, int, int] | None:
    """What changes when the model in ``path`` is written again; None when unreadable."""
    from tailorml.models.manifest import MANIFEST

    try:
        st = os.stat(Path(path) / MANIFEST)
    except OSError:
        # No manifest (a bare folder) or no folder: never cached, so the
        # engine's own check reports the problem on every request.
        return None
    return (path, st.st_ino, st.st_size, st.st_mtime_ns)


def _catalog_ref(settings: Settings, model_id: str) -> Any:
    from tailorml.models.catalog import find_base
    from tailorml.models.sources import materialize
    from tailorml.serve.models import ModelRef

    if find_base(model_id) is None:
        raise _not_found(model_id)
    base = materialize(model_id, settings.model_cache_dir, allow_paths=False, allow_hub=False)
    return ModelRef(
        key=model_id,
        path=base.path,
        architecture=base.architecture,
        context_length=base.context_length,
    )
