"""Run every benchmark in order (``make bench``): corpus, throughput, near-dup quality, PII, HTML.

Tools whose virtual environment is missing (see README.md, Install) are left
out with a message rather than failing the whole run; TailorML always runs.
Each script prints its Markdown tables and writes ``benchmarks/work/results/``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DATA = BENCH / "data"
VENVS = BENCH / "work" / "venvs"
CORPUS = BENCH / "work" / "corpus" / "corpus.jsonl"


def installed(tools: list[str]) -> list[str]:
    have = [t for t in tools if t == "tailorml" or (VENVS / t / "bin" / "python").exists()]
    missing = sorted(set(tools) - set(have))
    if missing:
        print(f"not installed, skipped: {', '.join(missing)} (see benchmarks/README.md)")
    return have


def run(script: str, *args: str) -> None:
    print(f"\n## {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(DATA / script), *args], check=True)


def main() -> None:
    if not CORPUS.is_file():
        run("build_corpus.py")
    baselines = ["tailorml", "datatrove", "textdedup", "datajuicer"]
    run("throughput.py", "--rounds", "2", "--tools", *installed(baselines))
    run("near_dup_quality.py", "--tools", *installed([*baselines, "datasketch"]))
    run("pii.py")
    run("html_extraction.py")


if __name__ == "__main__":
    main()
