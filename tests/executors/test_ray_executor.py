"""The Ray executor runs the same shards as the local one, on a local Ray instance."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailorml.data.readers import read_documents
from tailorml.data.recipe import load_recipe
from tailorml.data.runner import run_pipeline
from tailorml.executors import ShardFailedError
from tailorml.executors.ray import RayExecutor

ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray)")
DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
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


def test_ray_pipeline_matches_local(local_ray: None, tmp_path: Path) -> None:
    src = DATA / "web_c4_sample" / "c4_demo.jsonl"
    if not src.is_file():
        pytest.skip(f"shared datasets not found at {src} (see shared/datasets/README.md)")
    recipe = load_recipe(RECIPE)
    by_ray = run_pipeline(recipe, [src], tmp_path / "ray", executor="ray", workers=2, chunk=40)
    local = run_pipeline(recipe, [src], tmp_path / "local", executor="local", workers=1, shards=2,
                         chunk=40)  # fmt: skip
    assert by_ray.counts == local.counts and by_ray.counts["read"] == 300
    assert sorted(d.id for d in read_documents(by_ray.output_files)) == sorted(
        d.id for d in read_documents(local.output_files)
    )
    again = run_pipeline(recipe, [src], tmp_path / "ray", executor="ray", workers=2, chunk=40)
    assert again.shards_run == 0 and again.counts == by_ray.counts
