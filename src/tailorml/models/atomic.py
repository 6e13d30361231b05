"""Write a whole folder so that readers see either nothing or all of it.

Checkpoints, the final model and converted GGUF weights are folders of
several files. A worker killed halfway must not leave a folder that looks
complete, so each is written into a hidden temporary sibling and renamed
into place; a rename within one file system is atomic. The temporary name
carries the process id and a random part, so two processes writing the
same destination never share a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_PREFIX = ".tmp-"


@contextmanager
def atomic_directory(dest: Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary folder; on a clean exit, move it to ``dest``.

    With ``replace`` an existing ``dest`` is swapped out (moved aside, then
    removed) so a rerun can rewrite its output; without it, an existing
    ``dest`` wins and the new copy is discarded (rename-wins, used when two
    processes produce the same cache entry). On an exception the temporary
    folder is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f"{TMP_PREFIX}{dest.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        if not replace:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        old = dest.parent / f"{TMP_PREFIX}old-{dest.name}-{uuid.uuid4().hex[:8]}"
        os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(tmp, dest)
    except OSError:
        # Another process renamed its copy in first (the destination is a
        # non-empty folder now); its copy is as good as ours.
        if not dest.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write one file so readers see the old file or the new one, never half of it."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary folders a killed process left behind in ``folder``.

    Only for folders one process owns at a time (a job's checkpoints): in a
    shared cache it would delete another process's work in progress.
    """
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.name.startswith(TMP_PREFIX) and child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
