"""Object storage for uploaded files and artifacts, written atomically.

Every write goes to a temporary file in the target folder, is fsynced and
then renamed into place, so a crash or an over-limit upload never leaves a
half-written object visible; the temporary file of a process killed mid-write
is removed by ``remove_stale_temp_files`` when the API starts. The embedded default is a local folder; the
same interface is what an S3-compatible store implements when scaling out.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from tailorml.errors import PayloadTooLargeError

TEMP_PREFIX = ".tmp-"


class LocalStorage:
    """Objects as files under ``root``; keys are relative paths like ``files/<tenant>/<id>``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key {key!r} escapes the storage root")
        return path

    def put(
        self, key: str, chunks: Iterable[bytes], *, max_bytes: int | None = None
    ) -> tuple[int, str]:
        """Write ``chunks`` to ``key`` atomically; return ``(size, sha256)``.

        Raises ``PayloadTooLargeError`` as soon as ``max_bytes`` is passed,
        before the object becomes visible.
        """
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise PayloadTooLargeError(
                            f"The file is larger than the limit of {max_bytes} bytes; "
                            "split it or ask the operator to raise TAILOR_MAX_UPLOAD_BYTES.",
                            param="file",
                        )
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size, digest.hexdigest()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def remove_stale_temp_files(self, *, older_than_seconds: float) -> int:
        """Delete temporary files of writes that stopped (a killed process); return how many.

        Only files not modified for ``older_than_seconds``: another process sharing
        this folder may be writing one right now, and a live writer keeps touching it.
        Symbolic links are neither followed nor removed, and hidden ``.tmp-*`` folders
        (training's atomic folders, which clean up after themselves) are not entered.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        for folder, dirs, names in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(TEMP_PREFIX)]
            for name in names:
                if not name.startswith(TEMP_PREFIX):
                    continue
                path = Path(folder) / name
                try:
                    info = path.lstat()
                    if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:  # its writer finished or removed it meanwhile
                    continue
        return removed
