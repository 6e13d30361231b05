"""The data machinery imports without torch or ray: heavy imports happen where they are used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MODULES = [
    "tailorml.data.readers", "tailorml.data.writers", "tailorml.data.recipe",
    "tailorml.data.runner", "tailorml.data.trace", "tailorml.data.report", "tailorml.data.cli",
    "tailorml.data.ops.chat", "tailorml.data.ops.augment", "tailorml.data.ops.label_quality",
    "tailorml.executors.local", "tailorml.executors.ray",
]  # fmt: skip


def test_no_torch_or_ray_on_import() -> None:
    code = (
        f"import sys; import {', '.join(MODULES)}; "
        "heavy = [m for m in ('torch', 'ray', 'transformers', 'cleanlab') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": src}, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
