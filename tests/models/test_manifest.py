"""ModelManifest: what training writes beside a model, read back with every problem at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailorml.errors import InvalidRequestError, ModelUnavailableError
from tailorml.models.manifest import (
    MANIFEST,
    MANIFEST_VERSION,
    ModelManifest,
    has_manifest,
    read_manifest,
)


def test_round_trip_and_the_file_format(tmp_path: Path) -> None:
    manifest = ModelManifest(
        architecture="encoder",
        task="classification",
        base="minilm-l6",
        base_path=str(tmp_path),
        labels=("negative", "positive"),
        context_length=512,
        max_length=128,
    )
    manifest.write(tmp_path)
    assert has_manifest(tmp_path)
    assert json.loads((tmp_path / MANIFEST).read_text()) == {
        "architecture": "encoder",
        "task": "classification",
        "method": "full",
        "base": "minilm-l6",
        "base_path": str(tmp_path),
        "labels": ["negative", "positive"],
        "context_length": 512,
        "max_length": 128,
        "version": MANIFEST_VERSION,
    }
    assert read_manifest(tmp_path) == manifest


def test_a_manifest_from_before_versions_reads_as_version_1(tmp_path: Path) -> None:
    old = {"task": "chat", "method": "full", "architecture": "decoder", "labels": None}
    (tmp_path / MANIFEST).write_text(json.dumps(old))
    manifest = read_manifest(tmp_path)
    assert (manifest.version, manifest.context_length, manifest.max_length) == (1, 2048, None)


def test_relative_base_path_is_read_against_the_model_folder(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "adapter").mkdir()
    ModelManifest(architecture="decoder", method="lora", base_path="../base").write(
        tmp_path / "adapter"
    )
    manifest = read_manifest(tmp_path / "adapter")
    assert manifest.is_lora
    assert manifest.base_folder(tmp_path / "adapter") == (tmp_path / "base").resolve()


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = {"method": "lora", "architecture": "rnn", "labels": [], "version": 99}
    (tmp_path / MANIFEST).write_text(json.dumps(bad))
    with pytest.raises(ModelUnavailableError) as err:
        read_manifest(tmp_path, model="ft:x")
    message = err.value.message
    assert message.startswith("Model 'ft:x': ")
    for word in ("version 99", "architecture", "base_path", "labels"):
        assert word in message


def test_a_lora_model_needs_its_base_folder(tmp_path: Path) -> None:
    ModelManifest(architecture="decoder", method="lora", base_path="../gone").write(tmp_path)
    with pytest.raises(ModelUnavailableError, match="restore the base model"):
        read_manifest(tmp_path)


def test_missing_and_unreadable_manifests(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="not a folder written by tailorml.train"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("[1, 2]")
    with pytest.raises(ModelUnavailableError, match="JSON object"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(ModelUnavailableError, match="cannot be read"):
        read_manifest(tmp_path)


def test_an_invalid_manifest_cannot_be_built() -> None:
    with pytest.raises(ModelUnavailableError, match="LoRA model needs base_path"):
        ModelManifest(architecture="decoder", method="lora")
