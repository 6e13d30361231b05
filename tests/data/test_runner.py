"""The runner end to end on real data (SpamAssassin e-mails): counts add up, crashes resume, reports are written."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tailorml.data.readers import read_documents
from tailorml.data.recipe import load_recipe
from tailorml.data.runner import run_pipeline
from tailorml.errors import JobCancelledError
from tailorml.executors import ShardFailedError

sys.path.insert(0, str(Path(__file__).parent))
import pipeline_test_ops  # noqa: E402,F401 - registers test_crash_once

from tests import fixture_data  # noqa: E402

CLEANUP = """
name: mail-cleanup
steps:
  - op: normalize
  - op: length
    min: 60
  - op: exact_dedup
  - op: length
    max: 198
"""


@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 600 e-mails of the train split, 20 of them twice, and two unreadable lines."""
    lines = fixture_data.spam_path("train").read_text().splitlines(keepends=True)
    assert len(lines) == 601  # the header and 600 rows
    lines.insert(100, "broken line without a tab\n")
    lines.insert(400, "spam\tone\textra column\n")
    lines += lines[1:21]  # the same rows uploaded twice
    path = tmp_path_factory.mktemp("in") / "mail.tsv"
    path.write_text("".join(lines))
    return path


def _ids(files: list[Path]) -> list[str]:
    return [d.id for d in read_documents(files)]


def _removed(result) -> list[dict]:  # noqa: ANN001
    return [json.loads(x) for f in result.removed_files for x in f.open()]


def test_counts_add_up_and_every_removal_is_traced(mail: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    result = run_pipeline(load_recipe(CLEANUP), [mail], tmp_path, workers=1, shards=3,
                          chunk=50, progress=events.append)  # fmt: skip
    c = result.counts
    assert c["read"] == 622 and c["read"] + c["added"] == c["written"] + c["removed"]
    out, removed = _ids(result.output_files), _removed(result)
    assert len(out) == c["written"] and len(removed) == c["removed"]
    assert len(set(out)) == len(out) and not set(out) & {r["id"] for r in removed}
    by_op = {s.op: s for s in result.stats}
    assert by_op["read"].removed == 2 and by_op["length"].removed > 0
    assert by_op["exact_dedup"].removed >= 20  # the rows uploaded twice, at least
    assert by_op["normalize"].changed > 0 and by_op["normalize"].changed_examples
    unreadable = [r for r in removed if r["op"] == "read"]
    assert {r["meta"]["line"] for r in unreadable} == {101, 401}
    dup = next(r for r in removed if r["op"] == "exact_dedup")
    assert dup["reason"] and dup["record"]["text"]
    stages = {e["stage"] for e in events if e["type"] == "progress"}
    assert stages == {"s0-normalize+length", "s1-exact_dedup", "s2-length"}
    last = [e for e in events if e["type"] == "progress" and e["stage"] == "s0-normalize+length"]
    assert last[-1]["done"] == last[-1]["total"] == 3
    assert events[-1]["type"] == "done"
    report = json.loads(result.report_json.read_text())
    assert report["counts"] == c and report["before"]["labels"] and report["after"]["labels"]
    page = result.report_html.read_text()
    assert "<svg" in page and "exact_dedup" in page and "src=" not in page


def test_a_failed_shard_is_the_only_one_rerun(mail: Path, tmp_path: Path) -> None:
    flag = tmp_path / "crashed"
    recipe = load_recipe(
        CLEANUP + f"  - op: test_crash_once\n    flag_file: {flag}\n    crash_id: mail:303\n"
    )
    out = tmp_path / "out"
    with pytest.raises(ShardFailedError) as err:
        run_pipeline(recipe, [mail], out, workers=2, shards=4, chunk=50)
    (failed,) = err.value.failures  # one shard of the last stage met mail:303
    assert failed.startswith("s2-length+test_crash_once-")
    finished = sorted(p.name for p in (out / "_done").glob("s2-*"))
    assert len(finished) == 3  # the other shards of the failed stage kept their work
    result = run_pipeline(recipe, [mail], out, workers=2, shards=4, chunk=50)
    assert (result.shards_run, result.shards_skipped) == (1, 8)
    reference = run_pipeline(load_recipe(CLEANUP), [mail], tmp_path / "ref", workers=1, shards=4,
                             chunk=50)  # fmt: skip
    assert sorted(_ids(result.output_files)) == sorted(_ids(reference.output_files))
    assert result.counts == reference.counts


def test_a_killed_worker_loses_no_finished_work(mail: Path, tmp_path: Path) -> None:
    flag = tmp_path / "killed"
    text = (
        "name: kill\nsteps:\n  - op: normalize\n"
        f"  - op: test_crash_once\n    flag_file: {flag}\n    crash_id: mail:2\n    kill: true\n"
    )
    with pytest.raises(ShardFailedError):
        run_pipeline(load_recipe(text), [mail], tmp_path / "o", workers=2, shards=2, chunk=50)
    assert len(list((tmp_path / "o" / "_done").glob("s0-*"))) <= 1  # the killed shard has none
    result = run_pipeline(load_recipe(text), [mail], tmp_path / "o", workers=2, shards=2, chunk=50)
    ids = _ids(result.output_files)
    assert len(ids) == len(set(ids)) == 620 and result.shards_run >= 1


def test_a_changed_recipe_starts_over(mail: Path, tmp_path: Path) -> None:
    first = run_pipeline(load_recipe(CLEANUP), [mail], tmp_path, workers=1, shards=2)
    again = run_pipeline(load_recipe(CLEANUP), [mail], tmp_path, workers=1, shards=2)
    assert (again.shards_run, again.shards_skipped) == (0, first.shards_run)
    changed = run_pipeline(load_recipe(CLEANUP.replace("min: 60", "min: 190")), [mail], tmp_path,
                           workers=1, shards=2)  # fmt: skip
    assert changed.shards_skipped == 0 and changed.counts["written"] < first.counts["written"]


def test_parquet_output_and_a_global_first_stage(mail: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    text = "name: g\nsteps:\n  - op: exact_dedup\n"
    result = run_pipeline(load_recipe(text), [mail], tmp_path, workers=1, shards=2,
                          output_format="parquet")  # fmt: skip
    assert [p.suffix for p in result.output_files] == [".parquet", ".parquet"]
    assert len(_ids(result.output_files)) == result.counts["written"] > 500


def test_removed_records_carry_the_original_only_when_more_than_spacing_changed(
    tmp_path: Path,
) -> None:
    # Some chatterbot statements hold a double space that normalize collapses; Chinese
    # reviews have full-width punctuation that NFKC folds. A length filter then removes all.
    spaced = [t for t in fixture_data.english_sentences() if t.isascii() and "  " in t.strip()]
    spaced = spaced[:30]
    zh = [t for t in fixture_data.zh_reviews() if "\uff0c" in t][:10]
    assert len(spaced) == 30 and len(zh) == 10
    rows = [{"text": t, "src": "en"} for t in spaced] + [{"text": t, "src": "zh"} for t in zh]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    recipe = "name: t\nsteps:\n  - op: normalize\n  - op: length\n    min: 100000\n"
    result = run_pipeline(load_recipe(recipe), [path], tmp_path / "out", workers=1)
    removed = _removed(result)
    assert len(removed) == 40 and all(r["op"] == "length" for r in removed)
    by_src: dict[str, list[dict]] = {"en": [], "zh": []}
    for r in removed:
        by_src[r["record"]["src"]].append(r)
    assert all("original" not in r for r in by_src["en"])  # only the spacing changed
    assert [r["record"]["text"] for r in by_src["en"]] == [" ".join(t.split()) for t in spaced]
    assert all("original" in r for r in by_src["zh"])
    assert [r["original"]["text"] for r in by_src["zh"]] == zh


class _SlowChat(BaseHTTPRequestHandler):
    """A chat endpoint that answers after ``delay`` seconds (a stuck paraphrase model)."""

    delay = 0.0
    asked = threading.Event()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _SlowChat.asked.set()
        time.sleep(self.delay)
        text = body["messages"][0]["content"].rsplit("\n\n", 1)[-1]
        reply = json.dumps({"choices": [{"message": {"content": f"Put simply: {text}"}}]})
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_chat(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The endpoint's URL and a small input file."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowChat)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    _SlowChat.asked.clear()
    rows = [{"text": f"review number {i} of the film", "label": str(i % 2)} for i in range(6)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", src
    server.shutdown()
    server.server_close()


def _paraphrase_recipe(url: str) -> str:
    return f"""
name: para
steps:
  - op: normalize
  - op: paraphrase
    base_url: {url}
    model: tiny
    timeout_s: 60
"""


def test_should_stop_ends_an_inline_global_step_and_a_rerun_resumes(
    slow_chat: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, src = slow_chat
    monkeypatch.setattr(_SlowChat, "delay", 30.0)
    recipe = load_recipe(_paraphrase_recipe(url))
    out = tmp_path / "out"
    asked: list[float] = []

    def should_stop() -> bool:
        # Stop once the paraphrase step waits on the endpoint: one task, so in this process.
        if _SlowChat.asked.is_set() and not asked:
            asked.append(time.monotonic())
        return bool(asked)

    with pytest.raises(JobCancelledError):
        run_pipeline(recipe, [src], out, workers=2, shards=2, should_stop=should_stop)
    assert time.monotonic() - asked[0] < 1.5
    assert not list((out / "data").glob("part-*"))  # the stopped stage wrote nothing
    monkeypatch.setattr(_SlowChat, "delay", 0.0)
    again = run_pipeline(recipe, [src], out, workers=1, shards=2)
    assert again.shards_skipped == 2 and again.counts["added"] == 6  # normalize was kept


def test_should_stop_is_asked_between_stages(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"line {i} " * 5}) + "\n" for i in range(20)))
    recipe = load_recipe("name: two\nsteps:\n  - op: normalize\n  - op: exact_dedup\n")
    events: list[dict] = []

    def first_stage_done() -> bool:
        return any(e.get("stage", "").startswith("s0") and e.get("done") == e.get("total") == 2
                   for e in events)  # fmt: skip

    with pytest.raises(JobCancelledError):
        run_pipeline(recipe, [src], tmp_path / "out", workers=1, shards=2,
                     progress=events.append, should_stop=first_stage_done)  # fmt: skip
    assert {e["stage"][:2] for e in events if e["type"] == "progress"} == {"s0"}
    assert len(list((tmp_path / "out" / "_done").glob("s0-*"))) == 2
    assert not list((tmp_path / "out" / "_done").glob("s1-*"))
