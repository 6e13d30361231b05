"""Contract over the registry: every registered task and model source behaves alike."""

from __future__ import annotations

import inspect

import pytest

from tailorml.models import sources  # noqa: F401  (registers the model sources)
from tailorml.records import TASKS
from tailorml.registry import lookup, names
from tailorml.train.tasks import TrainTask, load_task

load_task("chat")  # registers the built-in tasks


@pytest.mark.parametrize("name", names("task"))
def test_every_task(name):
    task = load_task(name)
    assert isinstance(task, TrainTask)
    assert task.name == name and name in TASKS
    assert task.architecture in ("encoder", "decoder")
    assert task.peft_task_type in ("SEQ_CLS", "CAUSAL_LM", "FEATURE_EXTRACTION")
    assert task.record_type.__name__.endswith("Record")


@pytest.mark.parametrize("name", names("model_source"))
def test_every_model_source(name):
    source = lookup("model_source", name)
    params = list(inspect.signature(source).parameters)
    assert params == ["locator", "cache_dir", "name", "progress"]
    assert source.__doc__
