"""The training-record indexes of served models, read once and kept while unchanged.

An index (``tailorml.models.neighbors``) is a few megabytes; reading it per
request would cost more than the answer. It is cached by folder and
reloaded when its file changes (a retrained model written over the same
folder), and a model without one is remembered as such until it has one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from tailorml.models.neighbors import INDEX_RECORDS, MAX_NEIGHBORS, NeighborIndex, read_index

__all__ = ["MAX_NEIGHBORS", "NeighborIndexes"]

KEPT_INDEXES = 32  # least recently used beyond this are dropped


class NeighborIndexes:
    """Thread-safe cache of ``read_index`` by model folder, checked against the file's mtime."""

    def __init__(self, capacity: int = KEPT_INDEXES) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._kept: OrderedDict[Path, tuple[float, NeighborIndex | None]] = OrderedDict()

    def get(self, folder: Path) -> NeighborIndex | None:
        folder = Path(folder)
        try:
            stamp = (folder / INDEX_RECORDS).stat().st_mtime
        except OSError:
            stamp = -1.0
        with self._lock:
            kept = self._kept.get(folder)
            if kept is not None and kept[0] == stamp:
                self._kept.move_to_end(folder)
                return kept[1]
        index = read_index(folder) if stamp >= 0 else None
        with self._lock:
            self._kept[folder] = (stamp, index)
            self._kept.move_to_end(folder)
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)
        return index
