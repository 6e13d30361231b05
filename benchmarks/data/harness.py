"""Run one tool's driver as a child process and measure it: wall time and peak memory.

Every tool under test runs in its own virtual environment
(``benchmarks/work/venvs/<tool>``; TailorML uses the project's ``.venv``) as
a child of this process, through a small driver script in ``tools/``. The
driver does the work, writes ``kept_ids.txt`` (the ids of the records the
tool kept) and ``result.json`` (its own timing of the pipeline call and
notes), and exits.

Peak memory is sampled here every 0.1 s over the whole process tree of the
child (worker processes, Spark/JVM or pool children included): the peak of
the *sum* of RSS (an upper bound: shared pages count once per process) and
the peak of the sum of PSS (shared pages divided between their sharers: the
fair figure for "how much RAM the run needs").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]
WORK = ROOT / "benchmarks" / "work"
TOOLS = BENCH / "tools"
VENVS = WORK / "venvs"


def driver_of(tool: str) -> str:
    """The driver name of a tool: ``tailorml@REV`` (an older revision) runs ``tailorml``'s."""
    return tool.split("@", 1)[0]


def python_of(tool: str) -> Path:
    """The interpreter a tool runs under: the project's .venv for TailorML, else its own venv."""
    venv = ROOT / ".venv" if driver_of(tool) == "tailorml" else VENVS / tool
    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(
            f"No virtual environment for {tool} at {venv}: see benchmarks/README.md (Install)."
        )
    return python


def bench_env(threads: int = 2, src: Path | None = None) -> dict[str, str]:
    """The child's environment: pinned thread counts, offline hubs, no stray caches.

    ``src`` (default the checkout's ``src/``) goes first on ``PYTHONPATH``: an
    exported older revision's source is imported instead of the working tree's.
    """
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[name] = str(threads)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONHASHSEED="0",
        PYTHONPATH=str(src or ROOT / "src"),
    )
    env.pop("VIRTUAL_ENV", None)
    return env


@dataclass
class Measurement:
    tool: str
    mode: str
    rc: int
    wall_s: float
    """Wall time of the whole child process: interpreter start, imports, the run, its output."""
    peak_rss_mb: float
    peak_pss_mb: float
    peak_processes: int
    pipeline_s: float | None = None
    """The driver's own timing of the pipeline call (no interpreter start or id listing)."""
    docs_in: int | None = None
    docs_out: int | None = None
    notes: list[str] = field(default_factory=list)
    loadavg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class TreeSampler(threading.Thread):
    """Samples the summed RSS and PSS of a process and all its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = self.peak_pss = 0
        self.peak_procs = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss = pss = 0
            for proc in procs:
                try:
                    info = proc.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(procs))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_tool(
    tool: str,
    driver_args: list[str],
    workdir: Path,
    *,
    mode: str,
    timeout: float = 600,
    threads: int = 2,
    src: Path | None = None,
) -> Measurement:
    """Run ``tools/<driver>_run.py`` with ``driver_args`` in a fresh ``workdir``; measure it.

    ``src``: the TailorML source folder the child imports (see ``bench_env``).
    """
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    driver = TOOLS / f"{driver_of(tool)}_run.py"
    cmd = [str(python_of(tool)), str(driver), "--workdir", str(workdir)]
    cmd += driver_args
    load = os.getloadavg()
    log = (workdir / "driver.log").open("w")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=bench_env(threads, src), stdout=log, stderr=subprocess.STDOUT)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        rc = proc.wait()
    wall = time.perf_counter() - start
    sampler.stop()
    log.close()
    text = (workdir / "driver.log").read_text(errors="replace")
    m = Measurement(
        tool,
        mode,
        rc,
        round(wall, 3),
        round(sampler.peak_rss / 2**20, 1),
        round(sampler.peak_pss / 2**20, 1),
        sampler.peak_procs,
        loadavg=tuple(round(x, 2) for x in load),
        tail=text[-1500:] if rc else "",
    )
    result = workdir / "result.json"
    if rc == 0 and result.is_file():
        data = json.loads(result.read_text())
        m.pipeline_s = data.get("seconds")
        m.docs_in, m.docs_out = data.get("docs_in"), data.get("docs_out")
        m.notes = data.get("notes", [])
    elif rc:
        print(f"  {tool} failed (rc={rc}); last lines:\n{text[-800:]}", file=sys.stderr)
    return m


def kept_ids(workdir: Path) -> set[str]:
    """The ids a driver listed as kept."""
    return set((workdir / "kept_ids.txt").read_text(encoding="utf-8").split())
