"""Operators only the runner tests use: one that fails a shard once, to test resuming.

Imported by module name (not collected as tests) so the spawned shard
processes, which unpickle the operator class by reference, can import it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from tailorml.data.core import Document, Filter, Verdict
from tailorml.registry import register


class CrashOnceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flag_file: str | None = None
    """While this file does not exist, the document ``crash_id`` creates it and fails the shard."""
    crash_id: str = ""
    kill: bool = False
    """Kill the worker process outright instead of raising (a crash, not an error)."""


@register("data_op", "test_crash_once")
class CrashOnceFilter(Filter):
    """Keeps everything; fails its shard the first time it meets ``crash_id`` (tests only)."""

    name: ClassVar[str] = "test_crash_once"
    Params: ClassVar[type[BaseModel]] = CrashOnceParams

    def keep(self, doc: Document) -> Verdict:
        p = self.params
        if p.flag_file and doc.id == p.crash_id and not Path(p.flag_file).exists():
            Path(p.flag_file).write_text(str(os.getpid()))
            if p.kill:
                os._exit(17)
            raise RuntimeError(f"injected failure at {doc.id}")
        return Verdict.ok()
