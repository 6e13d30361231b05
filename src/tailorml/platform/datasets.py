"""The datasets service (a TailorML extension of the API): versions of a tenant's data made by
running a data-preparation recipe over uploaded files, as a job.

A dataset is a job of kind ``dataset`` (same states and events as a
fine-tuning job). When it succeeds its cleaned records become a
``fine-tune`` file, so ``training_file`` may name either that file or the
dataset id itself. The report, the removed records (each with the operator
and reason) and a preview of the records stay readable through the API.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tailorml.errors import ConflictError, GoneError, InvalidRequestError, NotFoundError
from tailorml.platform.db.models import Checkpoint, Job, JobEvent, new_id
from tailorml.platform.files import get_file
from tailorml.platform.jobs.queue import ACTIVE, add_event, check_capacity, request_cancel
from tailorml.platform.recipes import accept_recipe
from tailorml.platform.scoping import get_owned, owned
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage


def create_dataset(
    session: Session, *, tenant_id: str, settings: Settings, body: dict[str, Any]
) -> Job:
    file_ids: list[str] = body["files"]
    inputs = []
    for i, file_id in enumerate(file_ids):
        row = get_file(session, tenant_id=tenant_id, file_id=file_id, param=f"files[{i}]")
        inputs.append({"id": row.id, "filename": row.filename, "key": row.storage_key})
    recipe = accept_recipe(session, tenant_id=tenant_id, settings=settings, recipe=body["recipe"])
    check_capacity(session, tenant_id=tenant_id, limit=settings.max_active_jobs_per_tenant)
    name = body.get("name") or "dataset"
    version = 1 + (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.tenant_id == tenant_id, Job.kind == "dataset")
            .where(Job.spec["name"].as_string() == name)
        )
        or 0
    )
    job = Job(
        id=new_id("ds-"),
        kind="dataset",
        tenant_id=tenant_id,
        status="validating_files",
        spec={"name": name, "version": version, "files": inputs, **recipe.spec()},
    )
    session.add(job)
    session.flush()
    add_event(session, job.id, f"Recipe validated; {len(inputs)} input file(s). Moving to queued.")
    job.status = "queued"
    return job


def get_dataset(session: Session, *, tenant_id: str, dataset_id: str) -> Job:
    job = get_owned(
        session, Job, dataset_id, tenant_id=tenant_id, what="dataset", param="dataset_id"
    )
    if job.kind != "dataset":
        raise NotFoundError(
            f"No such dataset: {dataset_id!r}.", param="dataset_id", code="dataset_not_found"
        )
    return job


def list_datasets(session: Session, *, tenant_id: str, limit: int) -> list[Job]:
    query = owned(Job, tenant_id=tenant_id).where(Job.kind == "dataset")
    return list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)))


def finished(job: Job) -> dict[str, Any]:
    if job.result and job.result.get("inputs_deleted"):
        raise GoneError(
            f"Dataset {job.id} was made from file {job.result['inputs_deleted']}, which has been "
            "deleted; its records, report and output file were deleted with it.",
            param="dataset_id",
            code="dataset_inputs_deleted",
        )
    if job.status != "succeeded" or not job.result:
        raise ConflictError(
            f"Dataset {job.id} is {job.status}; its records and report exist once it has succeeded.",
            param="dataset_id",
        )
    return job.result


def run_dir(settings: Settings, job: Job) -> Path:
    """Where the dataset job's files live; its result names them relative to this folder."""
    return settings.jobs_dir / job.id


def result_path(settings: Settings, job: Job, relative: str) -> Path:
    path = (run_dir(settings, job) / relative).resolve()
    if not path.is_relative_to(run_dir(settings, job).resolve()):
        raise ValueError(f"dataset result path {relative!r} escapes the job folder")
    return path


def output_rows(settings: Settings, job: Job, *, offset: int, limit: int) -> list[dict[str, Any]]:
    paths = [result_path(settings, job, p) for p in finished(job)["output_files"]]
    return list(islice(jsonl_rows(paths), offset, offset + limit))


def removed_rows(settings: Settings, job: Job, *, limit: int) -> list[dict[str, Any]]:
    paths = [result_path(settings, job, p) for p in finished(job)["removed_files"]]
    return list(islice(jsonl_rows(paths), limit))


def report_path(settings: Settings, job: Job, fmt: str) -> Path:
    return result_path(
        settings, job, finished(job)["report_html" if fmt == "html" else "report_json"]
    )


def jsonl_rows(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """The rows of a run's JSONL files, streamed in order."""
    for path in map(Path, paths):
        if path.suffix != ".jsonl" or not path.is_file():
            continue
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def training_file_id(session: Session, *, tenant_id: str, dataset_id: str) -> str:
    """The fine-tune file a succeeded dataset produced (for ``training_file: ds-...``)."""
    job = get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    result = finished(job)
    if not result.get("output_file"):
        raise InvalidRequestError(
            f"Dataset {dataset_id} did not produce training records: {result.get('output_file_error')}",
            param="training_file",
        )
    return str(result["output_file"])


def cancel_dataset(session: Session, *, tenant_id: str, dataset_id: str) -> Job:
    job = get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    request_cancel(session, job)
    return job


def delete_dataset(
    session: Session, *, tenant_id: str, settings: Settings, storage: LocalStorage, dataset_id: str
) -> None:
    """Delete a dataset: its job, events, files on disk and the fine-tune file it produced."""
    job = get_dataset(session, tenant_id=tenant_id, dataset_id=dataset_id)
    if job.status in ACTIVE:
        raise ConflictError(
            f"Dataset {dataset_id} is {job.status}; cancel it first "
            f"(POST /v1/datasets/{dataset_id}/cancel).",
            param="dataset_id",
        )
    _drop_output_file(session, tenant_id=tenant_id, settings=settings, storage=storage, job=job)
    session.execute(delete(JobEvent).where(JobEvent.job_id == job.id))
    session.execute(delete(Checkpoint).where(Checkpoint.job_id == job.id))
    session.delete(job)
    session.flush()
    shutil.rmtree(run_dir(settings, job), ignore_errors=True)


def forget_input(
    session: Session, *, tenant_id: str, settings: Settings, storage: LocalStorage, file_id: str
) -> list[str]:
    """Before ``file_id`` is deleted: delete what datasets derived from it (records, report,
    output file, and in turn what was derived from that file); return the datasets touched.

    An active dataset reading the file makes the deletion a 409 (cancel it first).
    """
    touched = []
    for job in session.scalars(owned(Job, tenant_id=tenant_id).where(Job.kind == "dataset")):
        if file_id not in [f["id"] for f in job.spec.get("files", [])]:
            continue
        if job.status in ACTIVE:
            raise ConflictError(
                f"File {file_id} is an input of the active dataset {job.id}; cancel it first.",
                param="file_id",
            )
        if job.result and job.result.get("inputs_deleted"):
            continue
        _drop_output_file(session, tenant_id=tenant_id, settings=settings, storage=storage, job=job)
        shutil.rmtree(run_dir(settings, job), ignore_errors=True)
        kept = {k: v for k, v in (job.result or {}).items() if k in ("counts",)}
        job.result = {**kept, "inputs_deleted": file_id}
        add_event(
            session,
            job.id,
            f"Input file {file_id} was deleted; the dataset's records, report and output file "
            "were deleted with it.",
            level="warn",
        )
        touched.append(job.id)
    return touched


def _drop_output_file(
    session: Session, *, tenant_id: str, settings: Settings, storage: LocalStorage, job: Job
) -> None:
    output = (job.result or {}).get("output_file")
    if not output:
        return
    from tailorml.platform.files import delete_file

    try:
        delete_file(
            session, tenant_id=tenant_id, storage=storage, file_id=output, settings=settings
        )
    except NotFoundError:
        pass  # the tenant deleted the output file itself already


def dataset_object(job: Job) -> dict[str, Any]:
    result = job.result or {}
    return {
        "object": "dataset",
        "id": job.id,
        "name": job.spec["name"],
        "version": job.spec["version"],
        "status": job.status,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "files": [f["id"] for f in job.spec["files"]],
        "recipe": job.spec["recipe"],
        "recipe_name": job.spec.get("recipe_name"),
        "output_file": result.get("output_file"),
        "output_file_error": result.get("output_file_error"),
        "counts": result.get("counts"),
        "stats": result.get("stats"),
        "error": job.error,
    }
