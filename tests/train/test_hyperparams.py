"""The "auto" hyperparameter rules and the validation of explicit values."""

from __future__ import annotations

import pytest

from tailorml.errors import InvalidRequestError
from tailorml.train.hyperparams import auto_batch_size, auto_epochs, resolve_hyperparameters


@pytest.mark.parametrize(
    ("n_train", "epochs"),
    [(1, 10), (10, 10), (20, 5), (34, 3), (400, 3), (8000, 3), (9000, 2), (67349, 1)],
)
def test_auto_epochs(n_train, epochs):
    assert auto_epochs(n_train) == epochs


@pytest.mark.parametrize(
    ("task", "n_train", "batch"),
    [
        ("classification", 400, 16),
        ("classification", 100, 8),
        ("classification", 5, 1),
        ("classification", 30000, 32),
        ("chat", 100, 8),
        ("chat", 40, 4),
        ("completion", 1000, 8),
    ],
)
def test_auto_batch_size(task, n_train, batch):
    assert auto_batch_size(task, n_train) == batch


def test_auto_everything():
    hp = resolve_hyperparameters(task="classification", method="full", n_train=400)
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (3, 16, 1.0)
    assert hp.learning_rate == pytest.approx(5e-5)
    lora = resolve_hyperparameters(task="chat", method="lora", n_train=100)
    assert lora.learning_rate == pytest.approx(2e-4)
    full = resolve_hyperparameters(task="chat", method="full", n_train=100)
    assert full.learning_rate == pytest.approx(2e-5)


def test_explicit_values_are_kept():
    hp = resolve_hyperparameters(
        task="chat",
        method="lora",
        n_train=100,
        n_epochs=2,
        batch_size=4,
        learning_rate_multiplier=0.5,
    )
    assert (hp.n_epochs, hp.batch_size) == (2, 4)
    assert hp.learning_rate == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"n_epochs": 0}, "hyperparameters.n_epochs"),
        ({"n_epochs": 51}, "hyperparameters.n_epochs"),
        ({"n_epochs": 2.5}, "hyperparameters.n_epochs"),
        ({"batch_size": 0}, "hyperparameters.batch_size"),
        ({"batch_size": 257}, "hyperparameters.batch_size"),
        ({"batch_size": True}, "hyperparameters.batch_size"),
        ({"learning_rate_multiplier": 0}, "hyperparameters.learning_rate_multiplier"),
        ({"learning_rate_multiplier": -1.0}, "hyperparameters.learning_rate_multiplier"),
        ({"learning_rate_multiplier": "fast"}, "hyperparameters.learning_rate_multiplier"),
    ],
)
def test_invalid_values_name_the_parameter(kwargs, param):
    with pytest.raises(InvalidRequestError) as info:
        resolve_hyperparameters(task="classification", method="full", n_train=100, **kwargs)
    assert info.value.param == param
    assert param in info.value.message


def test_all_problems_reported_at_once():
    with pytest.raises(InvalidRequestError) as info:
        resolve_hyperparameters(task="chat", method="qlora", n_train=10, n_epochs=0, batch_size=999)
    message = info.value.message
    assert "method" in message and "n_epochs" in message and "batch_size" in message
