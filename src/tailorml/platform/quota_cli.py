"""``tailor admin quota set|list|clear`` and ``tailor admin usage``: the operator's quotas and
usage report, over the same services as ``/admin/tenants/{tenant}/quotas`` and ``/admin/usage``.

A quota set here applies at once to API processes that have not read the tenant's quotas in
the last ``TAILOR_QUOTA_CACHE_SECONDS``, and to the others within that time.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tailorml.errors import InvalidRequestError, TailorError
from tailorml.platform.quotas import METRICS, PERIODS, period_start
from tailorml.platform.settings import Settings

quota_cmd = typer.Typer(help="Set, list and clear tenants' quotas.", no_args_is_help=True)
console = Console()
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_time(value: str, *, now: float | None = None) -> int:
    """Unix seconds from ``1700000000``, ``2026-12-01``, ``2026-12-01T08:00`` (UTC) or an age
    such as ``30m``, ``24h``, ``7d``."""
    now = time.time() if now is None else now
    value = value.strip()
    if value.isdigit():
        return int(value)
    if match := _RELATIVE.match(value):
        return int(now - float(match[1]) * _UNITS[match[2]])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(
            f"{value!r} is not a time: give Unix seconds, a UTC date or time such as 2026-12-01 "
            "or 2026-12-01T08:00, or an age such as 24h or 7d."
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def _fail(exc: TailorError) -> None:
    console.print(f"[red]error:[/red] {exc.message}")
    raise typer.Exit(2)


def _sessions(settings: Settings):  # type: ignore[no-untyped-def]
    from tailorml.platform.db.engine import make_engine, make_sessionmaker, migrate

    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    return make_sessionmaker(engine)


@quota_cmd.command("set")
def quota_set(
    tenant: Annotated[str, typer.Argument(help="Tenant name or id.")],
    metric: Annotated[str, typer.Argument(help=", ".join(METRICS) + ".")],
    limit: Annotated[float, typer.Argument(help="Units per period (0 blocks, hard quotas).")],
    period: Annotated[str, typer.Option(help=" | ".join(PERIODS) + ".")] = "month",
    kind: Annotated[
        str,
        typer.Option(help="hard: 429 insufficient_quota when used up; rate: 429 with Retry-After."),
    ] = "hard",
) -> None:
    """Create or change a tenant's quota on METRIC per PERIOD."""
    from tailorml.platform import auth, quotas
    from tailorml.platform.db.engine import session_scope

    try:
        with session_scope(_sessions(Settings())) as s:
            row = auth.get_tenant(s, name_or_id=tenant)
            quotas.set_quota(s, tenant=row, metric=metric, limit=limit, period=period, kind=kind)
    except TailorError as exc:
        _fail(exc)
    console.print(f"{tenant}: {metric} {kind} quota {limit:g} per {period}")


@quota_cmd.command("list")
def quota_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's quotas.")] = None,
) -> None:
    """List quotas: tenant, metric, period, kind, limit."""
    from sqlalchemy import select

    from tailorml.platform import auth, quotas
    from tailorml.platform.db.engine import session_scope
    from tailorml.platform.db.models import Tenant

    try:
        with session_scope(_sessions(Settings())) as s:
            owner = auth.get_tenant(s, name_or_id=tenant) if tenant else None
            rows = quotas.list_quotas(s, tenant_id=owner.id if owner else None)
            names = dict(s.execute(select(Tenant.id, Tenant.name)).all())
    except TailorError as exc:
        _fail(exc)
    table = Table("tenant", "metric", "period", "kind", "limit")
    for r in rows:
        table.add_row(
            names.get(r.tenant_id, r.tenant_id), r.metric, r.period, r.kind, f"{r.limit:g}"
        )
    Console(width=160).print(table)


@quota_cmd.command("clear")
def quota_clear(
    tenant: Annotated[str, typer.Argument(help="Tenant name or id.")],
    metric: Annotated[str | None, typer.Argument(help="Only this metric's quotas.")] = None,
    period: Annotated[str | None, typer.Option(help="Only this period's.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only hard or only rate.")] = None,
) -> None:
    """Remove a tenant's quotas (all of them, or those matching METRIC, --period, --kind)."""
    from tailorml.platform import auth, quotas
    from tailorml.platform.db.engine import session_scope

    try:
        with session_scope(_sessions(Settings())) as s:
            row = auth.get_tenant(s, name_or_id=tenant)
            removed = quotas.clear_quotas(
                s, tenant_id=row.id, metric=metric, period=period, kind=kind
            )
    except TailorError as exc:
        _fail(exc)
    console.print(f"{tenant}: {removed} quota(s) removed")


def usage_report_command(
    tenant: Annotated[
        str | None, typer.Option(help="One tenant (name or id); all if left out.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Start: Unix seconds, a UTC date/time, or an age (24h, 7d); "
            "default the start of this month."
        ),
    ] = None,
    until: Annotated[str | None, typer.Option(help="End (exclusive); default now.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Usage per tenant over a period: requests, tokens, training, compute, storage, quotas."""
    from tailorml.platform import auth
    from tailorml.platform.db.engine import session_scope
    from tailorml.platform.usage_reports import usage_report

    try:
        start = parse_time(since) if since else int(period_start("month", time.time()))
        end = parse_time(until) if until else None
        with session_scope(_sessions(Settings())) as s:
            row = auth.get_tenant(s, name_or_id=tenant) if tenant else None
            report = usage_report(s, tenant=row, start_time=start, end_time=end)
    except TailorError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    _print_report(report)


def _print_report(report: dict[str, Any]) -> None:
    table = Table(
        "tenant", "requests", "prompt tok", "completion tok", "training tok", "compute s",
        "storage B", "quotas (used / limit)",
    )  # fmt: skip
    for t in report["data"]:
        totals = t["totals"]
        quotas = "; ".join(
            f"{q['metric']} {q['used']:g}/{q['limit']:g} per {q['period']} ({q['kind']})"
            for q in t["quotas"]
        )
        table.add_row(
            t["tenant"],
            str(totals["requests"]),
            str(totals["prompt_tokens"]),
            str(totals["completion_tokens"]),
            str(totals["training_tokens"]),
            f"{totals['compute_seconds']:.1f}",
            str(totals["storage_bytes"]),
            quotas or "-",
        )
    if report["data"]:
        first = report["data"][0]
        start = datetime.fromtimestamp(first["start_time"], UTC).strftime("%Y-%m-%d %H:%M")
        end = datetime.fromtimestamp(first["end_time"], UTC).strftime("%Y-%m-%d %H:%M")
        console.print(f"usage from {start} to {end} UTC")
    Console(width=200).print(table)
