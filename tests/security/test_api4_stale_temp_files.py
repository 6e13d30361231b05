"""API4 (unrestricted resource consumption), disk: an upload interrupted by a killed process left
its ``.tmp-*`` file in the storage folder for ever; each crash or kill during an upload leaked
up to the upload limit of disk. The API now removes such files when it starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tailorml.platform.api.app import create_app
from tailorml.platform.settings import Settings

# A process that writes an upload through LocalStorage.put and is killed halfway.
WRITER = """
import sys, time
from pathlib import Path
from tailorml.platform.storage import LocalStorage

def chunks():
    yield b"x" * 65536
    print("writing", flush=True)
    time.sleep(60)
    yield b"never"

LocalStorage(Path(sys.argv[1])).put("files/tn_acme/file-killed", chunks())
"""


def test_temp_files_of_killed_uploads_are_removed_at_start(settings: Settings) -> None:
    settings.ensure_dirs()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(settings.data_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    folder = settings.files_dir / "tn_acme"
    (left,) = folder.glob(".tmp-*")
    assert left.stat().st_size == 65536  # what a kill leaves: no finally ever ran

    # Another replica is uploading right now: its file is fresh and must survive.
    live = folder / ".tmp-live-upload"
    live.write_bytes(b"y")
    hour_ago = time.time() - 3600
    os.utime(left, (hour_ago, hour_ago))

    create_app(settings).state.tailor.engine.dispose()
    assert not left.exists() and live.exists()
    assert not (folder / "file-killed").exists()
