"""Settings from the environment (``TAILOR_`` prefix) or a ``.env`` file.

The defaults run everything on one machine with no extra server: a SQLite
file and a local folder under ``TAILOR_DATA_DIR``. Point
``TAILOR_DATABASE_URL`` at PostgreSQL to scale out.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAILOR_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path(".tailor"), description="Where files, models and jobs live.")
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means a SQLite file in the data folder."
    )
    master_secret: str = Field(
        "", description="Secret that keys are hashed with; generated in the data folder if empty."
    )
    admin_key: str = Field("", description="A key that may call /admin routes (optional).")
    host: str = "127.0.0.1"
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object per log line, with its request id."
    )
    port: int = 8000

    max_upload_bytes: int = Field(512 * 1024**2, description="Largest file /v1/files accepts.")
    max_request_bytes: int = Field(8 * 1024**2, description="Largest JSON body on other routes.")

    lease_seconds: float = Field(
        30.0, description="A job whose worker is silent this long is reclaimed."
    )
    heartbeat_seconds: float = Field(2.0, description="How often a worker renews its lease.")
    poll_seconds: float = Field(1.0, description="How often an idle worker looks for work.")
    workers: int = Field(1, description="Worker processes `tailor serve` starts beside the API.")
    worker_stop_grace_seconds: float = Field(
        10.0,
        gt=0,
        description="After SIGTERM a worker waits this long for its job to stop, then exits and "
        "leaves the job to be resumed by another worker.",
    )
    worker_restart_backoff_seconds: float = Field(
        1.0, ge=0, description="`tailor serve` restarts a dead worker after this (doubling)."
    )
    worker_crash_loop_limit: int = Field(
        5, ge=1, description="Deaths within 5 minutes after which a worker is not restarted."
    )

    train_processes: int = Field(
        1,
        ge=1,
        le=8,
        description="Processes a fine-tune trains with (torchrun, DDP) unless the job sets "
        "method.training.processes; on a GPU machine one per GPU, at most the GPU count.",
    )
    data_workers: int = Field(2, description="Processes a dataset job shards its input over.")
    dataset_max_seconds: float = Field(
        4 * 3600.0, gt=0, description="A dataset job running longer than this is stopped (failed)."
    )

    allow_model_paths: bool = Field(
        False, description="Let tenants name local folders or GGUF files as base models."
    )
    allow_hub_models: bool = Field(
        False,
        description="Let tenants name Hugging Face hub ids as models (downloads what a tenant "
        "names; needs network or a warm cache).",
    )
    recipes_dir: Path | None = Field(
        None, description="A folder of operator-registered YAML recipes tenants may name."
    )
    outbound_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts (name, name:port, IP or CIDR) the server may call on a tenant's behalf "
        "even though they resolve to loopback/private addresses; comma-separated.",
    )
    max_active_jobs_per_tenant: int = Field(
        20, ge=1, description="Queued plus running jobs one tenant may have; more answer 429."
    )
    redis_url: str = Field(
        "",
        description="Redis for rate limits shared by several API processes (redis://host:6379/0); "
        "empty keeps them in the database.",
    )
    usage_flush_seconds: float = Field(
        1.0, gt=0, le=60, description="How often an API process writes the usage it counted."
    )
    quota_cache_seconds: float = Field(
        2.0,
        ge=0,
        le=60,
        description="How long an API process trusts its copy of a tenant's quotas and totals.",
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="A client must send a request's headers within this time."
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest pause allowed between two chunks of a request body."
    )
    max_json_depth: int = Field(32, ge=2, description="Deepest nesting a JSON body may have.")
    max_record_bytes: int = Field(
        8 * 1024**2, description="Largest single record a dataset job reads (bigger: rejected)."
    )
    max_decompressed_bytes: int = Field(
        2 * 1024**3, description="Most bytes a compressed upload may expand to in a dataset job."
    )
    max_loaded_models: int = Field(4, description="Models the serving engine keeps in memory.")
    torch_threads: int = Field(0, description="Threads torch may use; 0 leaves torch's default.")
    serve_device: str = Field(
        "cpu",
        description="Where served models run: cpu, cuda, cuda:N, or auto (a GPU when torch sees "
        "one).",
    )
    serve_max_batch: int = Field(
        32, ge=1, description="Sequences one served decoder decodes together (continuous batching)."
    )
    serve_kv_cache_mb: int = Field(
        2048, ge=1, description="KV cache one served decoder's running batch may take, in MiB."
    )
    serve_prefill_chunk: int = Field(
        512, ge=1, description="Prompt tokens prefilled per scheduler step (long prompts split)."
    )
    serve_encode_batch: int = Field(
        64, ge=1, description="Inputs one embeddings/classification forward pass takes at most."
    )
    serve_batch_wait_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="How long an embeddings/classification batch waits for more requests, in ms.",
    )
    batch_concurrency: int = Field(
        8,
        ge=1,
        le=256,
        description="Requests of one Batch API batch in flight at once in its worker (they "
        "share the engine's batches).",
    )
    serve_max_queue: int = Field(
        256,
        ge=1,
        description="Requests in flight (running or waiting) on one served base model; beyond, "
        "a fast 429 with Retry-After.",
    )
    serve_tenant_concurrency: int = Field(
        64,
        ge=1,
        description="Inference requests one tenant may have in flight at once; beyond, a fast "
        "429 with Retry-After.",
    )
    serve_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description="Precision of served models; auto is float32 on a CPU (bf16 is two orders of "
        "magnitude slower on CPUs without bf16 units) and half precision on a GPU.",
    )

    @field_validator("outbound_allow", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tailor.db').resolve()}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models" / "base"

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.files_dir, self.jobs_dir, self.model_cache_dir):
            d.mkdir(parents=True, exist_ok=True)

    def secret(self) -> str:
        """The master secret; created once (mode 0600) in the data folder when not configured."""
        if self.master_secret:
            return self.master_secret
        path = self.data_dir / "master_secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        return path.read_text().strip()
