"""Fixtures shared by the whole suite: committed test data, tiny models, databases.

Database tests run on SQLite always and on PostgreSQL where one answers on
127.0.0.1:5432 (database ``test``), each test in its own schema so tests
cannot see each other.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
FIXTURES = REPO / "tests" / "fixtures" / "datasets"
PG_ADMIN_URL = os.environ.get(
    "TAILOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def fixture_dataset(*parts: str) -> Path:
    """A file of the committed test data (tests/fixtures/datasets); a missing one fails.

    The data is part of the repository, so its absence is a broken checkout, never a
    reason to skip.
    """
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.fail(
            f"{path} is missing: the test data is committed under tests/fixtures/datasets "
            "(scripts/build_test_fixtures.py rebuilds it)",
            pytrace=False,
        )
    return path


def _postgres_available() -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        dsn = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


_PG = None


def postgres_available() -> bool:
    global _PG
    if _PG is None:
        _PG = _postgres_available()
    return _PG


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tailor.db'}"
        return
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random BERT and Llama with the real MiniLM and SmolLM2 tokenizers, built once."""
    from tailorml.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "encoder": build_tiny_model("encoder", root / "tiny-bert"),
        "decoder": build_tiny_model("decoder", root / "tiny-llama"),
    }


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_models: dict[str, Path], model_cache: Path):
    """The suite's tiny BERT, described as a base model (``materialize``)."""
    from tailorml.models.sources import materialize

    return materialize(str(tiny_models["encoder"]), model_cache)


@pytest.fixture(scope="session")
def tiny_decoder(tiny_models: dict[str, Path], model_cache: Path):
    """The suite's tiny Llama, described as a base model."""
    from tailorml.models.sources import materialize

    return materialize(str(tiny_models["decoder"]), model_cache)
