"""The runner: plan a recipe into stages, run them shard by shard, resume, report.

Consecutive Mapper/Filter steps form one *streaming* stage, split into
``shards`` shards that an executor runs in parallel; each GlobalStep
(deduplication, label quality, augmentation) is a stage of its own.

A ``ShardedGlobalStep`` (near-dedup) runs as datatrove runs MinHash
dedup, in phases of its stage: ``summarize`` per shard in the workers
(near-dedup: signatures, ids, shingle sets, sorted band-key runs; no record
bodies), ``merge`` in the workers when the step asks for it (near-dedup:
one task per band), ``decide`` once (which records to drop, and why,
streamed to one drops file per shard), then ``apply`` per shard in the
workers (stream the shard and its drops file again, drop those). Records
are ordered by shard, then position. Every phase has its own completion
markers, so a rerun resumes inside the stage.

Any other global stage gathers everything in one task: the step's ``run``
sees the merged stream of the previous stage's shards, and its output is
dealt back into ``shards`` parts for the next streaming stage. That is
correct for any GlobalStep and fine up to what one process holds (the
runner also keeps each input record until the step answers for it, so
nothing is lost); ``exact_dedup`` streams, so it holds only its digests.

Layout of ``output_dir``::

    data/part-00000.jsonl      the cleaned records (fields + "_meta")
    removed/<stage>-00000.jsonl every removed record with op and reason
    report.json, report.html   the data report
    _work/<stage>/part-*.jsonl  intermediate stage outputs
    _work/<stage>/summary-*, drops-*.jsonl  a sharded global step's phases
    _done/<stage>-00000         completion markers (holding the shard's stats)
    _done/<stage>.summarize-00000, <stage>.merge-00000, <stage>.decide-00000  its phases

Progress is reported per finished shard (``done``/``total`` shards and the
records written so far): shards run in other processes or on other
machines, and a per-record channel back would cost more than it shows.

A shard writes its files atomically and then its marker, so a rerun with
the same recipe and inputs skips finished shards and redoes the rest; a
changed recipe or input starts over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tailorml.data.cancel import stop_check
from tailorml.data.core import Document, GlobalStep, ShardedGlobalStep, Verdict
from tailorml.data.limits import ReadLimits
from tailorml.data.readers import ReadOptions, Shard, input_files, read_documents
from tailorml.data.recipe import Recipe, Step, load_recipe
from tailorml.data.trace import OpStats, Profile, Trace, apply_global, apply_stream, screen_reads
from tailorml.data.writers import (
    AtomicFile,
    OutputFormat,
    dumps,
    open_writer,
    write_text_atomic,
)
from tailorml.executors import Executor, get_executor
from tailorml.executors.base import StopCheck, raise_if_stopped

log = logging.getLogger(__name__)
Progress = Callable[[dict[str, Any]], None]
_OWNED = ("data", "removed", "_work", "_done")  # the only folders a fresh start deletes


@dataclass(frozen=True)
class Stage:
    name: str
    kind: Literal["stream", "global"]
    steps: tuple[Step, ...]


def plan_stages(steps: list[Step]) -> list[Stage]:
    """Group steps: runs of Mapper/Filter become one streaming stage, each GlobalStep its own."""
    groups: list[tuple[str, list[Step]]] = []
    for step in steps:
        if issubclass(step.cls, GlobalStep):
            groups.append(("global", [step]))
        elif groups and groups[-1][0] == "stream":
            groups[-1][1].append(step)
        else:
            groups.append(("stream", [step]))
    stages = []
    for k, (kind, group) in enumerate(groups):
        label = "+".join(s.op for s in group)
        name = f"s{k}-{label if len(label) <= 40 else label[:37] + '...'}"
        stages.append(Stage(name, kind, tuple(group)))  # type: ignore[arg-type]
    return stages


Phase = Literal["run", "summarize", "merge", "decide", "apply"]


@dataclass(frozen=True)
class ShardTask:
    """Everything one shard needs; picklable, so any executor can ship it."""

    stage: str
    kind: Literal["stream", "global"]
    shard: Shard
    inputs: tuple[str, ...]
    read: ReadOptions
    steps: tuple[Step, ...]
    outputs: tuple[str, ...]
    removed: str
    marker: str
    output_format: OutputFormat
    first: bool
    last: bool
    phase: Phase = "run"
    work: tuple[str, ...] = ()
    """summarize: the summary stem; merge, decide: every shard's stem; apply: the drops file."""
    sources: tuple[tuple[tuple[str, ...], Shard], ...] = ()
    """decide: each shard's inputs and selection, to read records back."""
    limits: ReadLimits = ReadLimits()
    """What the readers may hold (the caller's caps on the inputs)."""


def _readable(
    inputs: Iterable[str], read: ReadOptions, shard: Shard, limits: ReadLimits
) -> Iterator[Document]:
    """The shard's documents that parsed: the ones the ``apply`` phase numbers by position."""
    for doc in read_documents([Path(p) for p in inputs], read, shard, limits=limits):
        if "read_error" not in doc.meta:
            yield doc


class _DropListed(GlobalStep):
    """The ``apply`` phase of a ShardedGlobalStep: drop the positions ``decide`` listed."""

    def __init__(self, drops: Iterator[tuple[int, str]]):
        self.drops = drops  # ascending positions: walked beside the shard, never held

    def run(self, docs: Iterable[Document]) -> Iterator[tuple[Document, Verdict]]:
        upcoming = next(self.drops, None)
        for pos, doc in enumerate(docs):
            if upcoming is not None and upcoming[0] == pos:
                yield doc, Verdict.drop(upcoming[1])
                upcoming = next(self.drops, None)
            else:
                yield doc, Verdict.ok()


def _run_phase(task: ShardTask) -> dict[str, Any]:
    """``summarize`` one shard, ``merge`` or ``decide`` over all of them; then write the marker."""
    step = task.steps[0]
    op = step.build()
    assert isinstance(op, ShardedGlobalStep)  # the planner only makes phases for these
    start = time.perf_counter()
    op.setup()
    if task.phase == "summarize":
        op.summarize(_readable(task.inputs, task.read, task.shard, task.limits), Path(task.work[0]))
    elif task.phase == "merge":
        op.merge([Path(s) for s in task.work], task.shard.rank, task.shard.world)
    else:
        sources = task.sources
        drops = op.decide(
            [Path(s) for s in task.work],
            lambda r: _readable(sources[r][0], task.read, sources[r][1], task.limits),
        )
        _write_drops(task.outputs, drops)
    # Only the time: the op's counts come from the ``apply`` phase, which sees every record.
    st = OpStats(step.op, step.index, "GlobalStep", seconds=time.perf_counter() - start)
    result = {"stage": task.stage, "rank": task.shard.rank, "written": 0,
              "stats": [st.to_dict()], "before": None, "after": None}  # fmt: skip
    write_text_atomic(Path(task.marker), dumps(result))
    return result


def _write_drops(paths: tuple[str, ...], drops: Iterable[tuple[int, int, str]]) -> None:
    """One drops file per shard, written as ``decide`` yields (ascending shard, then position)."""
    files = [AtomicFile(Path(p)) for p in paths]
    last = (-1, -1)
    try:
        for shard, pos, reason in drops:
            assert (shard, pos) > last, "decide must yield drops in shard, then position order"
            last = (shard, pos)
            files[shard].write(dumps([pos, reason]) + "\n")
    except BaseException:
        for fh in files:
            fh.abort()
        raise
    for fh in files:
        fh.commit()


def _load_drops(path: str) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            pos, reason = json.loads(line)
            yield int(pos), reason


def run_shard(task: ShardTask) -> dict[str, Any]:
    """Run one shard: read, apply the steps, write outputs and removed records, then the marker."""
    if task.phase in ("summarize", "merge", "decide"):
        return _run_phase(task)
    ops = [(s.index, s.op, s.build()) for s in task.steps]
    for _, _, op in ops:
        op.setup()
    trace = Trace(Path(task.removed))
    writers = [open_writer(Path(p), task.output_format) for p in task.outputs]
    before, after = Profile(), Profile()
    docs = read_documents([Path(p) for p in task.inputs], task.read, task.shard, limits=task.limits)
    if task.first:
        docs = _profiled(screen_reads(docs, trace), before)
    if task.kind == "stream":
        out = apply_stream(docs, ops, trace)
    else:
        index, name, op = ops[0]
        if task.phase == "apply":
            trace.stats_for(index, op, name)  # the stats show the real operator's kind
            op = _DropListed(_load_drops(task.work[0]))
        out = apply_global(docs, index, name, op, trace)  # type: ignore[arg-type]
    written, ok = 0, False
    try:
        for doc in out:
            writers[(written // task.shard.chunk) % len(writers)].write(doc)
            written += 1
            if task.last:
                after.add(doc)
        ok = True
    finally:
        for writer in writers:
            writer.close(ok)
        trace.close(ok)
    result = {
        "stage": task.stage,
        "rank": task.shard.rank,
        "written": written,
        "stats": [st.to_dict() for st in trace.stats.values()],
        "before": before.to_dict() if task.first else None,
        "after": after.to_dict() if task.last else None,
    }
    write_text_atomic(Path(task.marker), dumps(result))
    return result


def _profiled(docs: Any, profile: Profile) -> Any:
    for doc in docs:
        profile.add(doc)
        yield doc


@dataclass
class RunResult:
    """What a run produced; ``counts`` satisfies read + added == written + removed."""

    output_files: list[Path]
    stats: list[OpStats]
    report_json: Path
    report_html: Path
    removed_dir: Path
    removed_files: list[Path]
    counts: dict[str, int]
    shards_run: int = 0
    shards_skipped: int = 0
    stages: list[dict[str, Any]] = field(default_factory=list)


def _fingerprint(recipe: Recipe, read: ReadOptions, files: list[Path], settings: dict) -> str:
    inputs = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    body = dumps(
        {
            "recipe": recipe.to_dict(),
            "read": read.model_dump(mode="json"),
            "inputs": inputs,
            **settings,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _prepare(output_dir: Path, fingerprint: str, resume: bool) -> None:
    """Keep finished shards of the same run; otherwise clear what a previous run left."""
    stamp = output_dir / "_done" / "pipeline.json"
    same = stamp.is_file() and json.loads(stamp.read_text()).get("fingerprint") == fingerprint
    if not (resume and same):
        if stamp.is_file():
            log.info("recipe, inputs or settings changed (or resume is off): starting over")
        for name in _OWNED:
            shutil.rmtree(output_dir / name, ignore_errors=True)
    for name in _OWNED:
        for tmp in (output_dir / name).rglob("*.tmp-*"):
            tmp.unlink()  # left by a crashed shard; its marker is missing so it reruns
    write_text_atomic(stamp, dumps({"fingerprint": fingerprint}))


def run_pipeline(
    recipe: Recipe | str | Path,
    inputs: list[Path],
    output_dir: Path,
    *,
    executor: str | Executor = "local",
    workers: int = 2,
    shards: int | None = None,
    chunk: int = 100,
    read: ReadOptions | None = None,
    output_format: OutputFormat = "jsonl",
    resume: bool = True,
    progress: Progress | None = None,
    should_stop: StopCheck | None = None,
    limits: ReadLimits | None = None,
) -> RunResult:
    """Run ``recipe`` over ``inputs`` into ``output_dir``; resume finished shards if any.

    ``shards`` (default ``workers``) splits the input into every ``shards``-th
    chunk of ``chunk`` records. ``progress`` receives events
    ``{"type": "progress", "stage", "done", "total", "records"}`` per finished
    shard and ``{"type": "done", "report": "report.html"}`` at the end. ``should_stop``
    is asked before every stage and phase and handed to the executor (which
    ends running shards) and to inline operators (``tailorml.data.cancel``);
    when it turns true the run raises ``JobCancelledError`` and a rerun resumes.

    ``limits`` (default ``ReadLimits()``) caps what the readers hold of the
    inputs: records over the cap are reported as removed by ``read``, and a
    compressed input that expands too far stops the run. Everything the run
    writes names inputs relative to what was given (``_meta.source``, the
    report, events); ``RunResult`` keeps the full paths for the caller.
    """
    started = time.time()
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    read = read or recipe.read
    given = [Path(p) for p in inputs]
    found = input_files(given, read.format)
    files = [f.path for f in found]
    limits = limits or ReadLimits()
    # The runner's own work files passed the caps when read from the inputs (records may
    # have grown a little since: meta, normalisation): only the memory bound applies to them.
    own = ReadLimits(max_record_bytes=limits.max_decompressed_bytes)
    shards = shards or workers
    ex = get_executor(executor, workers) if isinstance(executor, str) else executor
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = {"shards": shards, "chunk": chunk, "format": output_format}
    _prepare(output_dir, _fingerprint(recipe, read, files, settings), resume)
    emit = progress or (lambda event: None)
    stages = plan_stages(recipe.steps)
    results: list[dict[str, Any]] = []
    stage_info: list[dict[str, Any]] = []
    run = skipped = 0
    # The first stage reads the inputs as given, so every shard names them as ``found`` does.
    prev: list[str] = [str(p) for p in given]
    for k, stage in enumerate(stages):
        first, last = k == 0, k == len(stages) - 1
        folder = output_dir / ("data" if last else f"_work/{stage.name}")
        suffix = "parquet" if last and output_format == "parquet" else "jsonl"
        parts = [str(folder / f"part-{r:05d}.{suffix}") for r in range(shards)]
        phases = _tasks(
            stage,
            prev,
            parts,
            read if first else ReadOptions(format="jsonl"),
            first,
            last,
            shards,
            chunk,
            output_dir,
            output_format if last else "jsonl",
            limits if first else own,
        )
        info: dict[str, Any] = {"name": stage.name, "kind": stage.kind, "phases": []}
        info["ops"] = [s.op for s in stage.steps]
        for phase, tasks in phases:
            raise_if_stopped(should_stop)
            done = [
                json.loads(Path(t.marker).read_text()) for t in tasks if Path(t.marker).is_file()
            ]
            todo = [t for t in tasks if not Path(t.marker).is_file()]
            records = sum(r["written"] for r in done)
            counter = {"done": len(done), "records": records}
            base = {"type": "progress", "stage": stage.name, "ops": info["ops"], "phase": phase}
            emit({**base, "done": len(done), "total": len(tasks), "records": records})

            def on_done(
                _: int,
                result: dict[str, Any],
                base: dict = base,
                counter: dict = counter,
                total: int = len(tasks),
            ) -> None:
                counter["done"] += 1
                counter["records"] += result["written"]
                emit(
                    {**base, "done": counter["done"], "total": total, "records": counter["records"]}
                )

            names = [f"{t.stage}-{t.shard.rank}" for t in todo]
            with stop_check(should_stop):  # what an inline shard's operators poll
                ran = ex.map(run_shard, todo, on_done=on_done, names=names, should_stop=should_stop)
            results += done + ran
            run, skipped = run + len(todo), skipped + len(done)
            info["phases"].append({"phase": phase, "tasks": len(tasks), "skipped": len(done)})
        # The last phase is the one that writes records: its shards are the stage's.
        info["shards"], info["skipped"] = info["phases"][-1]["tasks"], info["phases"][-1]["skipped"]
        stage_info.append(info)
        prev = parts
    shown = [f.name for f in found]
    return _finish(recipe, shown, output_dir, results, stage_info, run, skipped, started, emit)


def _tasks(
    stage: Stage,
    prev: list[str],
    parts: list[str],
    read: ReadOptions,
    first: bool,
    last: bool,
    shards: int,
    chunk: int,
    output_dir: Path,
    fmt: OutputFormat,
    limits: ReadLimits,
) -> list[tuple[Phase, list[ShardTask]]]:
    """The stage's phases in order, each a list of tasks that may run in parallel."""

    def task(
        rank: int,
        shard: Shard,
        inputs: list[str],
        outputs: list[str],
        phase: Phase = "run",
        **kw: Any,
    ) -> ShardTask:
        name = stage.name if phase in ("run", "apply") else f"{stage.name}.{phase}"
        return ShardTask(
            name,
            stage.kind,
            shard,
            tuple(inputs),
            read,
            stage.steps,
            tuple(outputs),
            str(output_dir / "removed" / f"{name}-{rank:05d}.jsonl"),
            str(output_dir / "_done" / f"{name}-{rank:05d}"),
            fmt,
            first,
            last,
            phase,
            **kw,
            limits=limits,
        )

    if first:  # every shard scans the raw inputs and keeps its own chunks
        split = [(prev, Shard(r, shards, chunk)) for r in range(shards)]
    else:
        split = [([prev[r]], Shard(0, 1, chunk)) for r in range(shards)]
    if stage.kind == "global" and issubclass(stage.steps[0].cls, ShardedGlobalStep):
        work = output_dir / "_work" / stage.name
        stems = [str(work / f"summary-{r:05d}") for r in range(shards)]
        drops = [str(work / f"drops-{r:05d}.jsonl") for r in range(shards)]
        sources = tuple((tuple(i), sh) for i, sh in split)
        op = stage.steps[0].build()
        merges = op.merge_tasks() if isinstance(op, ShardedGlobalStep) else 0
        return [
            ("summarize", [task(r, sh, i, [], "summarize", work=(stems[r],))
                           for r, (i, sh) in enumerate(split)]),
            *([("merge", [task(r, Shard(r, merges, chunk), [], [], "merge", work=tuple(stems))
                          for r in range(merges)])] if merges else []),
            ("decide", [task(0, Shard(0, 1, chunk), [], drops, "decide", work=tuple(stems),
                             sources=sources)]),
            ("apply", [task(r, sh, i, [parts[r]], "apply", work=(drops[r],))
                       for r, (i, sh) in enumerate(split)]),
        ]  # fmt: skip
    if stage.kind == "global":
        return [("run", [task(0, Shard(0, 1, chunk), prev, parts)])]
    return [("run", [task(r, sh, i, [parts[r]]) for r, (i, sh) in enumerate(split)])]


def _finish(
    recipe: Recipe,
    inputs: list[str],
    output_dir: Path,
    results: list[dict[str, Any]],
    stage_info: list[dict[str, Any]],
    run: int,
    skipped: int,
    started: float,
    emit: Progress,
) -> RunResult:
    from tailorml.data.report import write_report

    merged: dict[int, OpStats] = {}
    before, after = Profile(), Profile()
    for result in results:
        for raw in result["stats"]:
            st = OpStats.from_dict(raw)
            merged.setdefault(st.step, OpStats(st.op, st.step, st.kind)).merge(st)
        if result["before"]:
            before.merge(Profile.from_dict(result["before"]))
        if result["after"]:
            after.merge(Profile.from_dict(result["after"]))
    stats = [merged[k] for k in sorted(merged)]
    last = stage_info[-1]["name"]
    counts = {
        "read": merged[-1].docs_in if -1 in merged else 0,
        "removed": sum(s.removed for s in stats),
        "added": sum(s.added for s in stats),
        "written": sum(r["written"] for r in results if r["stage"] == last),
    }
    if counts["read"] + counts["added"] != counts["written"] + counts["removed"]:
        log.warning("record counts do not add up: %s", counts)  # a bug in an operator or here
    outputs = sorted((output_dir / "data").glob("part-*"))
    removed = sorted((output_dir / "removed").glob("*.jsonl"))
    summary = {
        "recipe": recipe.shown_dict(),
        "inputs": inputs,
        "counts": counts,
        "stages": stage_info,
        "ops": [s.to_dict() for s in stats],
        "before": before.to_dict(),
        "after": after.to_dict(),
        # Named relative to output_dir: the report travels to users who must not see server paths.
        "outputs": [p.relative_to(output_dir).as_posix() for p in outputs],
        "removed_files": [p.relative_to(output_dir).as_posix() for p in removed],
        "seconds": round(time.time() - started, 3),
    }
    report_json, report_html = write_report(summary, output_dir)
    emit({"type": "done", "report": report_html.name, "counts": counts})
    return RunResult(
        outputs,
        stats,
        report_json,
        report_html,
        output_dir / "removed",
        removed,
        counts,
        run,
        skipped,
        stage_info,
    )


def iter_output(result: RunResult) -> list[Document]:
    """Read a run's cleaned records back (tests and small jobs; large ones stream the files)."""
    return list(read_documents(result.output_files)) if result.output_files else []
