"""Fixtures for the evaluation tests: the training tests' tiny models and data helpers."""

from tests.train.conftest import model_cache, tiny_decoder, tiny_encoder  # noqa: F401
