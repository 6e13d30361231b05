"""The models a tenant can see and call: the base catalog plus its own fine-tuned models.

Serving resolves a public model id to a ``tailorml.serve.models.ModelRef``:
an ``ft:...`` id through the tenant's rows (another tenant's id is simply
not found), a catalog name through the model cache. An unknown id is an
error, never a silent fallback to a base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from tailorml.errors import ConflictError, NotFoundError
from tailorml.platform.db.models import Model
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
    from tailorml.train.catalog import catalog

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
    return data


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


def delete_model(session: Session, *, tenant_id: str, model_id: str) -> None:
    from tailorml.platform.db.models import Job

    row = session.get(Model, model_id)
    if row is None or row.tenant_id != tenant_id:
        raise _not_found(model_id)
    if row.job_id:
        job = session.get(Job, row.job_id)
        if job is not None and job.status in ACTIVE:
            raise ConflictError(f"Model {model_id} still has an active job.")
    session.delete(row)


def resolve_ref(session: Session, *, tenant_id: str, settings: Settings, model_id: str) -> Any:
    """The serving engine's ``ModelRef`` for ``model_id`` as seen by this tenant."""
    from tailorml.serve.models import ModelRef
    from tailorml.train.catalog import find_base
    from tailorml.train.sources import materialize

    if model_id.startswith("ft:"):
        row = session.get(Model, model_id)
        if row is None or row.tenant_id != tenant_id:
            raise _not_found(model_id)
        return ModelRef.from_folder(model_id, Path(row.path))
    if find_base(model_id) is None:
        raise _not_found(model_id)
    base = materialize(model_id, settings.model_cache_dir, allow_paths=False, allow_hub=False)
    return ModelRef(
        key=model_id,
        path=base.path,
        architecture=base.architecture,
        context_length=base.context_length,
    )
