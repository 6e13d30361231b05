"""Real data for the data-operator tests, from ../shared/datasets (skipped when absent).

Fixtures, not imports: the loaders are session-scoped so tests that share a
corpus read it once.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

DATASETS = Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets"


def _dataset(*parts: str) -> Path:
    path = DATASETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared datasets are not beside this checkout")
    return path


def _tsv_column(path: Path, column: str) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    i = lines[0].split("\t").index(column)
    return [line.split("\t")[i] for line in lines[1:]]


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The shared datasets folder."""
    return _dataset()


@pytest.fixture(scope="session")
def c4() -> list[str]:
    """The 300 C4 web documents (English)."""
    path = _dataset("web_c4_sample", "c4_demo.jsonl")
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="session")
def sst2() -> list[str]:
    """The 872 SST-2 dev sentences (English, lower-cased, tokenised)."""
    return _tsv_column(_dataset("sst2", "dev.tsv"), "text_a")


@pytest.fixture(scope="session")
def zh_reviews() -> list[str]:
    """The 1,200 ChnSentiCorp dev reviews (Chinese)."""
    return _tsv_column(_dataset("chnsenticorp", "dev.tsv"), "text_a")


@pytest.fixture(scope="session")
def zh_reviews_train() -> list[str]:
    """The 9,600 ChnSentiCorp train reviews, 8,249 distinct."""
    return _tsv_column(_dataset("chnsenticorp", "train.tsv"), "text_a")


@pytest.fixture(scope="session")
def mrpc() -> list[tuple[int, str, str]]:
    """MRPC test pairs ``(label, sentence1, sentence2)`` as stored (double-encoded UTF-8)."""
    path = _dataset("dedup_pairs", "msr_paraphrase_test.txt")
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return [(int(r[0]), r[3], r[4]) for r in rows]


@pytest.fixture(scope="session")
def presidio() -> list[dict]:
    """The 1,500 presidio-research synthetic PII records with gold character spans."""
    path = _dataset("pii_presidio_synth", "synth_dataset_v2.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="session")
def articles() -> list[tuple[str, str]]:
    """The first 15 article pages (by id) as ``(html, gold article text)``."""
    root = _dataset("web_article_extraction")
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id in sorted(truth)[:15]:
        html = gzip.decompress((root / "html" / f"{page_id}.html.gz").read_bytes())
        pages.append((html.decode("utf-8"), truth[page_id]["articleBody"]))
    return pages
