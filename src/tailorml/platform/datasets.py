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
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import tailorml
from tailorml.errors import ConflictError, InvalidRequestError, NotFoundError
from tailorml.platform.db.models import Job, new_id
from tailorml.platform.files import get_file
from tailorml.platform.jobs.queue import add_event
from tailorml.platform.scoping import get_owned, owned


def shipped_recipes_dir() -> Path:
    """The ``recipes/`` folder shipped beside the package source."""
    return Path(tailorml.__file__).resolve().parents[2] / "recipes"


def resolve_recipe_text(recipe: str | dict[str, Any]) -> str:
    """A recipe given as a shipped name, YAML/JSON text or an object, as YAML text (validated)."""
    import yaml

    from tailorml.data.recipe import load_recipe

    if isinstance(recipe, dict):
        text = yaml.safe_dump(recipe, sort_keys=False)
    elif "\n" not in recipe and ":" not in recipe:
        path = shipped_recipes_dir() / f"{recipe.removesuffix('.yaml')}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in shipped_recipes_dir().glob("*.yaml"))
            raise InvalidRequestError(
                f"No shipped recipe named {recipe!r}; use one of {', '.join(names) or 'none'}, "
                "or send the recipe itself as YAML text or an object.",
                param="recipe",
            )
        text = path.read_text()
    else:
        text = recipe
    load_recipe(text)  # raises RecipeError listing every problem
    return text


def create_dataset(session: Session, *, tenant_id: str, body: dict[str, Any]) -> Job:
    file_ids: list[str] = body["files"]
    inputs = []
    for i, file_id in enumerate(file_ids):
        row = get_file(session, tenant_id=tenant_id, file_id=file_id, param=f"files[{i}]")
        inputs.append({"id": row.id, "filename": row.filename, "key": row.storage_key})
    recipe = resolve_recipe_text(body["recipe"])
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
        spec={"name": name, "version": version, "files": inputs, "recipe": recipe},
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
    if job.status != "succeeded" or not job.result:
        raise ConflictError(
            f"Dataset {job.id} is {job.status}; its records and report exist once it has succeeded.",
            param="dataset_id",
        )
    return job.result


def output_rows(result: dict[str, Any], *, offset: int, limit: int) -> list[dict[str, Any]]:
    return list(islice(jsonl_rows(result["output_files"]), offset, offset + limit))


def removed_rows(result: dict[str, Any], *, limit: int) -> list[dict[str, Any]]:
    return list(islice(jsonl_rows(result["removed_files"]), limit))


def jsonl_rows(paths: list[str]) -> Iterator[dict[str, Any]]:
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
        "output_file": result.get("output_file"),
        "output_file_error": result.get("output_file_error"),
        "counts": result.get("counts"),
        "stats": result.get("stats"),
        "error": job.error,
    }
