"""Settings from the environment (``TAILOR_`` prefix) or a ``.env`` file.

The defaults run everything on one machine with no extra server: a SQLite
file and a local folder under ``TAILOR_DATA_DIR``. Point
``TAILOR_DATABASE_URL`` at PostgreSQL to scale out.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    port: int = 8000

    max_upload_bytes: int = Field(512 * 1024**2, description="Largest file /v1/files accepts.")
    max_request_bytes: int = Field(8 * 1024**2, description="Largest JSON body on other routes.")

    lease_seconds: float = Field(
        30.0, description="A job whose worker is silent this long is reclaimed."
    )
    heartbeat_seconds: float = Field(2.0, description="How often a worker renews its lease.")
    poll_seconds: float = Field(1.0, description="How often an idle worker looks for work.")
    workers: int = Field(1, description="Worker processes `tailor serve` starts beside the API.")

    data_workers: int = Field(2, description="Processes a dataset job shards its input over.")

    allow_model_paths: bool = Field(
        False, description="Let tenants name local folders or GGUF files as base models."
    )
    allow_hub_models: bool = Field(
        True, description="Let tenants name Hugging Face hub ids (needs network or a warm cache)."
    )
    max_loaded_models: int = Field(4, description="Models the serving engine keeps in memory.")
    torch_threads: int = Field(0, description="Threads torch may use; 0 leaves torch's default.")

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
