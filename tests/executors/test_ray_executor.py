"""The Ray executor runs the same shards as the local one, on a local Ray instance."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailorml.data.readers import read_documents
from tailorml.data.recipe import load_recipe
from tailorml.data.runner import run_pipeline
from tailorml.errors import JobCancelledError
from tailorml.executors import ShardFailedError
from tailorml.executors.ray import RayExecutor
from tests import fixture_data

ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray)")
SRC = Path(__file__).resolve().parents[2] / "src"
RECIPE = """
name: c4-ray
steps:
  - op: normalize
  - op: length
    min: 500
  - op: exact_dedup
  - op: length
    max: 5000
"""


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # Ray's workers are fresh interpreters: they find tailorml through PYTHONPATH.
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})  # fmt: skip
    yield
    ray.shutdown()


def fail_on_two(n: int) -> int:
    if n == 2:
        raise RuntimeError("two")
    return n + 1


def test_ray_map_collects_results_and_failures(local_ray: None) -> None:
    assert RayExecutor(workers=2).map(fail_on_two, [0, 1, 3]) == [1, 2, 4]
    with pytest.raises(ShardFailedError) as err:
        RayExecutor(workers=2).map(fail_on_two, [1, 2, 3], names=["x", "y", "z"])
    assert list(err.value.failures) == ["y"] and "two" in err.value.failures["y"]


def sleep_after_writing_pid(folder: str) -> int:
    Path(folder, f"{os.getpid()}.pid").write_text("")
    time.sleep(60)
    return 0


def test_should_stop_cancels_running_ray_tasks(local_ray: None, tmp_path: Path) -> None:
    asked: list[float] = []

    def should_stop() -> bool:
        if len(list(tmp_path.glob("*.pid"))) == 2 and not asked:
            asked.append(time.monotonic())
        return bool(asked)

    with pytest.raises(JobCancelledError):
        RayExecutor(workers=2).map(sleep_after_writing_pid, [str(tmp_path)] * 3,
                                   should_stop=should_stop)  # fmt: skip
    assert time.monotonic() - asked[0] < 2
    # Force-cancelled tasks take their worker processes with them.
    deadline = time.monotonic() + 10
    pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    assert len(pids) == 2 and not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ray_pipeline_matches_local(local_ray: None, tmp_path: Path) -> None:
    src = fixture_data.c4_path()
    recipe = load_recipe(RECIPE)
    by_ray = run_pipeline(recipe, [src], tmp_path / "ray", executor="ray", workers=2, chunk=40)
    local = run_pipeline(recipe, [src], tmp_path / "local", executor="local", workers=1, shards=2,
                         chunk=40)  # fmt: skip
    assert by_ray.counts == local.counts and by_ray.counts["read"] == 200
    assert sorted(d.id for d in read_documents(by_ray.output_files)) == sorted(
        d.id for d in read_documents(local.output_files)
    )
    again = run_pipeline(recipe, [src], tmp_path / "ray", executor="ray", workers=2, chunk=40)
    assert again.shards_run == 0 and again.counts == by_ray.counts
