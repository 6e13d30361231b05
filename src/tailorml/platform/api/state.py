"""What the app holds for its lifetime: settings, the database, storage and the serving engine."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tailorml.platform.api.metrics import HttpMetrics
from tailorml.platform.audit import AuditWriter
from tailorml.platform.db.engine import make_read_sessionmaker
from tailorml.platform.models import ModelResolver
from tailorml.platform.quota_gate import QuotaGate
from tailorml.platform.ratelimit import make_limiter
from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage
from tailorml.platform.supervisor import WorkerSupervisor
from tailorml.platform.usage import UsageRecorder


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: LocalStorage
    # Sessions for key checks and lookups: they never take SQLite's write lock.
    read_sessions: sessionmaker[Session] = field(init=False)
    # Public model ids to the engine's refs, cached across requests.
    models: ModelResolver = field(init=False)
    # The worker supervisor of `tailor serve` when it runs workers in this process (/readyz).
    supervisor: WorkerSupervisor | None = None
    # HTTP answers by route, status and error code (/metrics).
    http_metrics: HttpMetrics = field(default_factory=HttpMetrics)
    # Every request's use, written once a second (platform/usage.py), and the quotas checked
    # before a request's body is read (platform/quota_gate.py).
    usage: UsageRecorder = field(init=False)
    quotas: QuotaGate = field(init=False)
    # The audit events of API requests, written on a thread of their own (platform/audit.py).
    audit: AuditWriter = field(init=False)
    _serving: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.read_sessions = make_read_sessionmaker(self.engine)
        self.models = ModelResolver(self.settings)
        self.usage = UsageRecorder(
            self.sessions,
            self.read_sessions,
            jobs_dir=self.settings.jobs_dir,
            flush_seconds=self.settings.usage_flush_seconds,
        )
        self.quotas = QuotaGate(
            self.read_sessions,
            limiter=make_limiter(redis_url=self.settings.redis_url, engine=self.engine),
            recorder=self.usage,
            cache_seconds=self.settings.quota_cache_seconds,
        )
        self.usage.after_flush = self.quotas.charge_tokens
        self.audit = AuditWriter(self.sessions, on_failure=self.http_metrics.audit_failures.inc)

    @property
    def started_serving(self) -> Any:
        """The inference engine if a request has started it, else None (never starts it)."""
        with self._lock:
            return self._serving

    @property
    def serving(self) -> Any:
        """The inference engine, created on first use so the control plane starts without torch."""
        with self._lock:
            if self._serving is None:
                from tailorml.serve.engine import Engine

                if self.settings.torch_threads:
                    import torch

                    torch.set_num_threads(self.settings.torch_threads)
                self._serving = Engine(
                    max_loaded=self.settings.max_loaded_models,
                    device=self.settings.serve_device,
                    dtype=self.settings.serve_dtype,
                    max_batch=self.settings.serve_max_batch,
                    kv_cache_mb=self.settings.serve_kv_cache_mb,
                    prefill_chunk=self.settings.serve_prefill_chunk,
                    encode_batch=self.settings.serve_encode_batch,
                    batch_wait_ms=self.settings.serve_batch_wait_ms,
                    max_queue=self.settings.serve_max_queue,
                    tenant_concurrency=self.settings.serve_tenant_concurrency,
                    tenant_limits=self.quotas.concurrency_limit,
                )
                self.quotas.engine_check = self._serving.admission.check_tenant
            return self._serving
