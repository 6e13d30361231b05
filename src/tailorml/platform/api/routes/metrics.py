"""``GET /metrics``: the platform's HTTP metrics and the serving engine's, for Prometheus.

It needs an admin key (the metrics name tenants' models); point Prometheus
at it with ``authorization: {credentials: <admin key>}``. The engine's
registry is included once the engine has started; scraping never starts it
(so a control-plane-only process loads no torch for it).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tailorml.platform.api.deps import AdminDep, StateDep

router = APIRouter(tags=["ops"])


@router.get("/metrics", include_in_schema=False)
def metrics(state: StateDep, _admin: AdminDep) -> Response:
    body = generate_latest(state.http_metrics.registry)
    engine = state.started_serving
    if engine is not None:
        body += generate_latest(engine.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
