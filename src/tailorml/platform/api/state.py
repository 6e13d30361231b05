"""What the app holds for its lifetime: settings, the database, storage and the serving engine."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tailorml.platform.settings import Settings
from tailorml.platform.storage import LocalStorage


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: LocalStorage
    _serving: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
                )
            return self._serving
