"""What was derived from a file, and what a model was derived from.

The records already hold the edges: a dataset job lists its input files (``spec.files``) and
names the file it produced (``result.output_file``); a fine-tuning job names its training and
validation files (a dataset id given as ``training_file`` is stored as the dataset's output
file); a model names its job. ``derived_from_file`` follows them forwards (a dataset's output
may feed another dataset or a job), ``model_sources`` backwards, to the uploads a model came
from. Deleting a file (``DELETE /v1/files/{id}``) answers this lineage; with
``derived_models=delete`` it also deletes the models trained on it, weights included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from tailorml.platform.db.models import Job, Model
from tailorml.platform.scoping import owned


@dataclass
class Lineage:
    file_id: str
    datasets: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # dataset outputs derived from the file
    fine_tuning_jobs: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    def to_object(self) -> dict[str, Any]:
        return {
            "object": "file.lineage",
            "file_id": self.file_id,
            "datasets": sorted(self.datasets),
            "files": sorted(self.files),
            "fine_tuning_jobs": sorted(self.fine_tuning_jobs),
            "models": sorted(self.models),
        }


def _job_inputs(job: Job) -> list[str]:
    if job.kind == "dataset":
        return [f["id"] for f in job.spec.get("files", []) if isinstance(f, dict) and "id" in f]
    return [f for f in (job.spec.get("training_file"), job.spec.get("validation_file")) if f]


def derived_from_file(session: Session, *, tenant_id: str, file_id: str) -> Lineage:
    """Every dataset, dataset output, fine-tuning job and model derived from ``file_id``."""
    jobs = list(session.scalars(owned(Job, tenant_id=tenant_id).order_by(Job.created_at)))
    lineage = Lineage(file_id)
    reached, frontier = {file_id}, [file_id]
    while frontier:
        current = frontier.pop()
        for job in jobs:
            if current not in _job_inputs(job):
                continue
            if job.kind == "dataset":
                if job.id not in lineage.datasets:
                    lineage.datasets.append(job.id)
                output = (job.result or {}).get("output_file")
                if output and output not in reached:
                    reached.add(output)
                    lineage.files.append(output)
                    frontier.append(output)
            elif job.kind == "fine_tune" and job.id not in lineage.fine_tuning_jobs:
                lineage.fine_tuning_jobs.append(job.id)
    if lineage.fine_tuning_jobs:
        lineage.models = sorted(
            session.scalars(
                owned(Model, tenant_id=tenant_id)
                .where(Model.job_id.in_(lineage.fine_tuning_jobs))
                .with_only_columns(Model.id)
            )
        )
    return lineage


def model_sources(session: Session, *, tenant_id: str, model: Model) -> dict[str, Any]:
    """The files (uploads and dataset outputs) and datasets a model was trained from."""
    if model.job_id is None:
        return {"files": [], "datasets": []}
    job = session.get(Job, model.job_id)
    if job is None or job.tenant_id != tenant_id:
        return {"files": [], "datasets": []}
    by_output = {
        (d.result or {}).get("output_file"): d
        for d in session.scalars(owned(Job, tenant_id=tenant_id).where(Job.kind == "dataset"))
        if (d.result or {}).get("output_file")
    }
    files, datasets = [], []
    frontier = list(_job_inputs(job))
    while frontier:
        current = frontier.pop(0)
        if current in files:
            continue
        files.append(current)
        producer = by_output.get(current)
        if producer is not None and producer.id not in datasets:
            datasets.append(producer.id)
            frontier.extend(_job_inputs(producer))
    return {"files": files, "datasets": datasets}
