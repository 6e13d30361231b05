"""``tailor data``: run a recipe, list the operators, check a recipe (on a sample of the inputs).

Each command is one typed function over the library (``run_pipeline``,
``op_catalog``, ``load_recipe``); the platform's ``tailor`` command mounts
this ``app`` as ``tailor data``. Errors print their message and exit with
status 1 rather than a traceback: they say what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tailorml.errors import TailorError

if TYPE_CHECKING:
    from tailorml.data.recipe import Recipe

app = typer.Typer(help="Prepare data: clean, filter, deduplicate and augment with a recipe.")


def _fail(exc: TailorError) -> None:
    typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


class _Bars:
    """One rich progress bar per stage, fed by the runner's progress events."""

    def __init__(self, progress: Any):
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("type") != "progress":
            return
        stage = event["stage"]
        if stage not in self.tasks:
            label = f"{stage} ({', '.join(event.get('ops', []))})"
            self.tasks[stage] = self.progress.add_task(label, total=event.get("total"), records=0)
        self.progress.update(
            self.tasks[stage],
            completed=event["done"],
            total=event.get("total"),
            records=event.get("records", 0),
        )


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    input: Annotated[
        list[Path], typer.Option("--input", "-i", help="Input file or folder (repeatable).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")],
    executor: Annotated[str, typer.Option(help="local (processes) or ray.")] = "local",
    workers: Annotated[int, typer.Option(min=1, help="Parallel workers.")] = 2,
    shards: Annotated[int | None, typer.Option(min=1, help="Shards (default: workers).")] = None,
    output_format: Annotated[str, typer.Option(help="jsonl or parquet.")] = "jsonl",
    restart: Annotated[bool, typer.Option(help="Ignore finished shards; start over.")] = False,
    max_record_mib: Annotated[
        float, typer.Option(min=0.001, help="Largest record read; bigger ones are reported.")
    ] = 8,
    max_decompressed_mib: Annotated[
        float, typer.Option(min=1, help="Most a compressed input may expand to.")
    ] = 2048,
) -> None:
    """Run RECIPE over the inputs; finished shards of an earlier run are resumed."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tailorml.data.limits import ReadLimits
    from tailorml.data.runner import run_pipeline

    if output_format not in ("jsonl", "parquet"):
        _fail(TailorError("--output-format must be jsonl or parquet."))
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("shards · {task.fields[records]} records"),
    )
    try:
        with Progress(*columns, console=console) as bars:
            result = run_pipeline(
                recipe,
                input,
                output,
                executor=executor,
                workers=workers,
                shards=shards,
                output_format=output_format,
                resume=not restart,
                progress=_Bars(bars),  # type: ignore[arg-type]
                limits=ReadLimits(
                    max_record_bytes=int(max_record_mib * 1024**2),
                    max_decompressed_bytes=int(max_decompressed_mib * 1024**2),
                ),
            )
    except TailorError as exc:
        _fail(exc)
        return
    c = result.counts
    typer.echo(
        f"read {c['read']}, wrote {c['written']}, removed {c['removed']}, added {c['added']} "
        f"({result.shards_run} shards run, {result.shards_skipped} resumed)"
    )
    typer.echo(f"output:  {output / 'data'}")
    typer.echo(f"removed: {result.removed_dir}")
    typer.echo(f"report:  {result.report_html}")


@app.command()
def ops() -> None:
    """List the registered operators with their parameters.

    ``*`` marks a required parameter; ``[file]``, ``[model]``... one that names
    a server resource, which tenants set only to their own objects.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from tailorml.data.recipe import discover_ops, op_catalog

    table = Table("operator", "kind", "parameters", "what it does", show_lines=True)
    for op in op_catalog():
        params = "\n".join(
            f"{p['name']}{'*' if p['required'] else '=' + repr(p['default'])}"
            + (f" [{p['resource']}]" if p["resource"] else "")
            for p in op["params"]
        )
        table.add_row(op["name"], op["kind"], escape(params) or "-", op["summary"])
    Console().print(table)
    for module, why in discover_ops().items():
        typer.secho(f"not loaded: {module} ({why})", err=True, fg=typer.colors.YELLOW)


@app.command()
def check(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(help="Input files or folders: run the recipe on a sample of them."),
    ] = None,
    sample: Annotated[int, typer.Option(min=1, help="Records read from the inputs.")] = 1000,
    max_removed: Annotated[
        float,
        typer.Option(min=0, max=1, help="Warn when the recipe removes more than this share."),
    ] = 0.2,
    strict: Annotated[bool, typer.Option(help="Exit with status 1 when it warns.")] = False,
) -> None:
    """Validate RECIPE and print every problem at once; given INPUTS, try it on a sample.

    The recipe runs in this process on the first ``--sample`` records, and a
    warning names the operators that removed most when more than
    ``--max-removed`` of the sample would go: a filter made for other data
    (``quality`` is for web documents) shows before a full run. Global steps
    (dedup) see only the sample, so they remove less than on the whole input.
    """
    from tailorml.data.recipe import RecipeError, load_recipe
    from tailorml.data.runner import plan_stages

    try:
        loaded = load_recipe(recipe)
    except RecipeError as exc:
        _fail(exc)
        return
    typer.echo(f"{loaded.name}: {len(loaded.steps)} steps, OK")
    for stage in plan_stages(loaded.steps):
        typer.echo(f"  {stage.name} [{stage.kind}]: {', '.join(s.op for s in stage.steps)}")
    if not inputs:
        return
    try:
        read, removals = sample_removals(loaded, inputs, sample)
    except TailorError as exc:
        _fail(exc)
        return
    removed = sum(n for _, n, _ in removals)
    share = removed / read if read else 0.0
    typer.echo(f"sample: {read} records, {removed} removed ({share:.1%})")
    for op, n, reason in removals:
        typer.echo(f"  {op}: {n} ({n / read:.1%}), most often {reason!r}")
    if read and share > max_removed:
        top = [f"{op} ({n / read:.1%})" for op, n, _ in removals[:3]]
        typer.secho(
            f"warning: the recipe removes {share:.1%} of the sample, over {max_removed:.0%}; "
            f"most by {', '.join(top)}. Check that these operators suit this data "
            "(their parameters, or another recipe) before a full run.",
            err=True,
            fg=typer.colors.YELLOW,
        )
        if strict:
            raise typer.Exit(1)


def sample_removals(
    recipe: Recipe, inputs: list[Path], sample: int
) -> tuple[int, list[tuple[str, int, str]]]:
    """Run ``recipe`` in this process on the first ``sample`` records of ``inputs``.

    Returns how many records were read and, per operator that removed any,
    ``(op, removed, most frequent reason)``, most removals first.
    """
    import itertools
    import tempfile

    from tailorml.data.readers import read_documents
    from tailorml.data.runner import plan_stages
    from tailorml.data.trace import Trace, apply_global, apply_stream, screen_reads

    with tempfile.TemporaryDirectory(prefix="tailor-check-") as tmp:
        trace = Trace(Path(tmp) / "removed.jsonl")
        try:
            docs = list(
                screen_reads(itertools.islice(read_documents(inputs, recipe.read), sample), trace)
            )
            read = trace.stats[-1].docs_in
            for stage in plan_stages(recipe.steps):
                ops = [(s.index, s.op, s.build()) for s in stage.steps]
                for _, _, op in ops:
                    op.setup()
                if stage.kind == "stream":
                    docs = list(apply_stream(docs, ops, trace))
                else:
                    index, name, op = ops[0]
                    docs = list(apply_global(docs, index, name, op, trace))  # type: ignore[arg-type]
        finally:
            trace.close(ok=False)
    rows = [
        (st.op, st.removed, max(st.reasons, key=st.reasons.__getitem__))
        for st in trace.stats.values()
        if st.removed
    ]
    return read, sorted(rows, key=lambda row: -row[1])
