"""The suite is self-contained: a clone of the repository alone runs every test.

No test reads a file outside the repository (the ``shared`` folder beside a
checkout, an absolute path of one machine), none skips because data is absent,
and every set under ``tests/fixtures/datasets`` carries its licence and a
PROVENANCE.md whose checksums still match the files.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "datasets"
MAX_FILE_BYTES = 1024**2
MAX_TOTAL_BYTES = 3 * 1024**2

# Spelled in pieces so this file does not match itself when read as text.
_Q = "[\"']"
OUTSIDE = {
    "a path into the shared folder beside the checkout": re.compile(
        rf"{_Q}\.\.{_Q}\s*/\s*{_Q}shared{_Q}|\.\./shared\b"
    ),
    "the folder beside the repository": re.compile(
        rf"\b(?:REPO|ROOT|HERE|BASE)\.parent\b|\.parents\[\d+\]\s*/\s*{_Q}\.\.{_Q}"
    ),
    "the shared datasets": re.compile(rf"{_Q}shared{_Q}\s*/\s*{_Q}datasets{_Q}|shared/datasets"),
    "an absolute path of one machine": re.compile(rf"{_Q}/(?:work|home)/"),
}
DATA_SKIP = re.compile(
    r"pytest\.skip\([^)]*(?:absent|not found|missing|dataset)", re.IGNORECASE | re.DOTALL
)


def python_sources() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if p != Path(__file__).resolve())


def test_no_test_reads_outside_the_repository() -> None:
    found = []
    for path in python_sources():
        text = path.read_text(encoding="utf-8")
        for what, pattern in OUTSIDE.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(TESTS.parent)}:{line}: {what} ({match[0]!r})")
    assert not found, "tests must read only the repository:\n" + "\n".join(found)


def test_no_test_skips_for_missing_data() -> None:
    found = []
    for path in python_sources():
        text = path.read_text(encoding="utf-8")
        for match in DATA_SKIP.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(TESTS.parent)}:{line}")
    assert not found, "test data is committed: fail, do not skip, when it is missing:\n" + (
        "\n".join(found)
    )


def test_the_checks_catch_what_they_are_for() -> None:
    # Written in pieces, so this file itself holds no path outside the repository.
    shared, up = "shared", ".."
    outside = [
        f'DATA = Path(__file__).resolve().parents[2] / "{up}" / "{shared}" / "datasets"',
        f'SHARED = REPO.parent / "{shared}"',
        f'src = "/{"/".join(["work", shared, "datasets", "sst2", "dev.tsv"])}"',
        f"open('{up}/{shared}/x.csv')",
    ]
    for line in outside:
        assert any(p.search(line) for p in OUTSIDE.values()), line
    inside = ['Path(__file__).parent / "fixtures"', 'names = ("..", ".")', "tmp_path / 'a'"]
    for line in inside:
        assert not any(p.search(line) for p in OUTSIDE.values()), line
    assert DATA_SKIP.search('pytest.skip(f"{path} is absent: check out the data")')
    assert not DATA_SKIP.search('pytest.skip("Redis is not reachable on 127.0.0.1:6379")')


def fixture_folders() -> list[Path]:
    return sorted(p for p in FIXTURES.iterdir() if p.is_dir())


def test_fixture_sets_are_listed() -> None:
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    folders = fixture_folders()
    assert len(folders) >= 6
    for folder in folders:
        assert f"`{folder.name}/`" in readme, f"{folder.name} is missing from README.md"


@pytest.mark.parametrize("folder", fixture_folders(), ids=lambda p: p.name)
def test_each_fixture_set_has_its_licence_and_true_provenance(folder: Path) -> None:
    names = {p.name for p in folder.iterdir()}
    assert "PROVENANCE.md" in names, f"{folder.name}: no PROVENANCE.md"
    assert any(n.upper().startswith(("LICENSE", "LICENCE")) for n in names), (
        f"{folder.name}: no licence file (LICENSE*)"
    )
    provenance = (folder / "PROVENANCE.md").read_text(encoding="utf-8")
    for heading in ("Source", "Licence", "How"):
        assert f"**{heading}" in provenance, f"{folder.name}: PROVENANCE.md lacks {heading}"
    rows = re.findall(r"^\| (\S+) \| [^|]+ \| (\d+) \| ([0-9a-f]{64}) \|$", provenance, re.M)
    listed = {name for name, _, _ in rows}
    data = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(("PROVENANCE", "LICENSE", "LICENCE", "NOTICE"))
    }
    assert listed == data, f"{folder.name}: checksum table and files differ"
    for name, size, digest in rows:
        content = (folder / name).read_bytes()
        assert len(content) == int(size), f"{folder.name}/{name}: size changed"
        assert hashlib.sha256(content).hexdigest() == digest, f"{folder.name}/{name}: changed"


def test_fixtures_stay_small() -> None:
    files = [p for p in FIXTURES.rglob("*") if p.is_file()]
    big = [f"{p.relative_to(FIXTURES)} ({p.stat().st_size} bytes)" for p in files
           if p.stat().st_size > MAX_FILE_BYTES]  # fmt: skip
    assert not big, big
    assert sum(p.stat().st_size for p in files) < MAX_TOTAL_BYTES
