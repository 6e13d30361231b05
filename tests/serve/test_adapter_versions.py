"""An adapter replaced in place (a job writing a new version into the same folder) is served
from its next request, without a restart, and the old version's weights are freed."""

from __future__ import annotations

import shutil
from pathlib import Path

from tailorml.serve import Engine, ModelRef

from .conftest import TinyModels
from .test_batching import PROMPTS


def test_a_new_version_in_the_same_folder_is_served_next(tiny: TinyModels, tmp_path: Path) -> None:
    folder = tmp_path / "ft-model"
    shutil.copytree(tiny.lora_a, folder)
    engine = Engine()
    ref = ModelRef.from_folder("ft:tiny:acme:x:1", folder)

    def answer(r: ModelRef) -> str:
        return engine.complete(r, PROMPTS[1], max_tokens=12, temperature=0).text

    first = answer(ref)
    assert first == answer(ModelRef.from_folder("ft:a", tiny.lora_a))
    other = answer(ModelRef.from_folder("ft:b", tiny.lora_b))
    assert other != first  # the two adapters answer differently
    # The job writes version 2 (here: adapter b's weights) into the same folder.
    tmp = folder / "adapter_model.safetensors.tmp"
    shutil.copyfile(tiny.lora_b / "adapter_model.safetensors", tmp)
    tmp.replace(folder / "adapter_model.safetensors")
    assert answer(ref) == other
    base = engine._cache.bases()[0][1]
    names = {n for n in base.weights.resident}  # type: ignore[attr-defined]
    # a's and b's own folders, and the replaced folder's new version only
    assert len(names) == 3
