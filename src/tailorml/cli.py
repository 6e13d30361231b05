"""The ``tailor`` command. Each subcommand is one typed function over the same services the API uses.

tailor serve                  API + worker on 127.0.0.1:8000 (SQLite and a local folder)
tailor worker                 one more worker (any machine sharing the database)
tailor admin tenant create N  a tenant and its first key (printed once)
tailor admin key create|list|revoke   more keys (scopes, expiry), rotation
tailor admin quota set|list|clear     tenants' quotas and rate limits
tailor admin usage --tenant T --since 7d   usage per tenant and period
tailor models                 the base-model catalog
tailor models export M --out D   a fine-tuned model as adapter, merged or ONNX
tailor data run RECIPE ...    a data-preparation recipe over local files
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tailorml.data.cli import app as data_app
from tailorml.errors import TailorError
from tailorml.platform.quota_cli import quota_cmd, usage_report_command
from tailorml.platform.settings import Settings

app = typer.Typer(
    help="TailorML: data in, fine-tuned model out, served over an OpenAI-compatible API.",
    no_args_is_help=True,
)
admin = typer.Typer(help="Operator commands: tenants, keys, quotas, usage.", no_args_is_help=True)
tenant_cmd = typer.Typer(help="Create and list tenants.", no_args_is_help=True)
key_cmd = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
db_cmd = typer.Typer(help="Database schema.", no_args_is_help=True)
audit_cmd = typer.Typer(help="Export and verify the audit log.", no_args_is_help=True)
app.add_typer(admin, name="admin")
admin.add_typer(tenant_cmd, name="tenant")
admin.add_typer(key_cmd, name="key")
admin.add_typer(quota_cmd, name="quota")
admin.add_typer(audit_cmd, name="audit")
admin.command("usage")(usage_report_command)
app.add_typer(db_cmd, name="db")
console = Console()


def _sessions(settings: Settings):  # type: ignore[no-untyped-def]
    from tailorml.platform.db.engine import make_engine, make_sessionmaker, migrate

    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    return make_sessionmaker(engine)


def _audited(session, action: str, resource: str, tenant_id: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Record an operator command in the operator's audit chain, in the change's transaction."""
    import getpass
    import socket

    from tailorml.platform import audit

    audit.append(
        session,
        audit.Entry(
            chain=audit.OPERATOR_CHAIN,
            action=f"cli.{action}",
            method="CLI",
            path=" ".join(["tailor", *sys.argv[1:4]])[:512],
            status=0,
            tenant_id=tenant_id,
            role="cli",
            key_id=f"{getpass.getuser()}@{socket.gethostname()}"[:40],
            resource=resource,
        ),
    )


def _fail(exc: TailorError) -> None:
    console.print(f"[red]error:[/red] {exc.message}")
    raise typer.Exit(2)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default TAILOR_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default TAILOR_PORT, 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes to start beside the API.")
    ] = None,
) -> None:
    """Start the API and its workers; runs until interrupted."""
    from tailorml.platform.api.app import create_app
    from tailorml.platform.api.server import run_server
    from tailorml.platform.supervisor import supervise_workers

    settings = Settings()
    sessions = _sessions(settings)  # migrate once, before the workers start
    n_workers = settings.workers if workers is None else workers
    # Restarts a worker that died and hands its job back (platform/supervisor.py).
    supervisor = supervise_workers(settings, sessions, n_workers)

    def _exit(signum: int, _frame: object) -> None:
        # uvicorn re-raises the signal it caught once it has shut down; leaving through
        # SystemExit rather than the default handler lets `finally` stop the workers.
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    try:
        # uvicorn with a header timeout and scrubbed access logs (platform/api/server.py).
        api = create_app(settings, run_migrations=False)
        api.state.tailor.supervisor = supervisor  # /readyz counts its workers
        run_server(api, settings, host=host, port=port)
    finally:
        supervisor.stop()


@app.command()
def worker() -> None:
    """Run one worker: claim queued jobs from the database and run them."""
    from tailorml.platform import logs
    from tailorml.platform.jobs.worker import run_worker

    settings = Settings()
    logs.configure(settings.log_format)
    _sessions(settings)
    run_worker(settings)


@tenant_cmd.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, hyphens.")],
) -> None:
    """Create a tenant and print its first API key (shown only once)."""
    from tailorml.platform import auth
    from tailorml.platform.db.engine import session_scope

    settings = Settings()
    try:
        with session_scope(_sessions(settings)) as s:
            tenant = auth.create_tenant(s, name=name)
            key = auth.create_key(s, secret=settings.secret(), tenant=tenant, name="default")
            _audited(s, "tenant_create", tenant.id)
    except TailorError as exc:
        _fail(exc)
    console.print(
        f"Tenant [bold]{name}[/bold] created ({tenant.id}). Its API key, shown only once:"
    )
    print(key)


@tenant_cmd.command("list")
def tenant_list() -> None:
    """List tenants."""
    from sqlalchemy import select

    from tailorml.platform.db.engine import session_scope
    from tailorml.platform.db.models import Tenant

    table = Table("id", "name", "created_at")
    with session_scope(_sessions(Settings())) as s:
        for t in s.scalars(select(Tenant).order_by(Tenant.created_at)):
            table.add_row(t.id, t.name, str(t.created_at))
    console.print(table)


@tenant_cmd.command("delete")
def tenant_delete(
    name: Annotated[str, typer.Argument(help="The tenant's name or id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a tenant and everything of it (database rows and stored bytes); print a report."""
    import json
    import shutil

    from tailorml.platform.db.engine import session_scope
    from tailorml.platform.storage import LocalStorage
    from tailorml.platform.tenants import delete_tenant

    if not yes:
        typer.confirm(f"Delete tenant {name} and all of its data?", abort=True)
    settings = Settings()
    try:
        with session_scope(_sessions(settings)) as s:
            report, folders = delete_tenant(
                s, name_or_id=name, settings=settings, storage=LocalStorage(settings.data_dir)
            )
            _audited(s, "tenant_delete", report["tenant_id"])
    except TailorError as exc:
        _fail(exc)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(report, indent=2))


def _set_disabled(name: str, disabled: bool) -> None:
    from tailorml.platform.db.engine import session_scope
    from tailorml.platform.tenants import set_disabled

    try:
        with session_scope(_sessions(Settings())) as s:
            tenant = set_disabled(s, name_or_id=name, disabled=disabled)
            _audited(s, "tenant_disable" if disabled else "tenant_enable", tenant.id)
            tenant_name = tenant.name
    except TailorError as exc:
        _fail(exc)
    console.print(f"tenant {tenant_name} {'disabled' if disabled else 'enabled'}")


@tenant_cmd.command("disable")
def tenant_disable(name: Annotated[str, typer.Argument(help="The tenant's name or id.")]) -> None:
    """Refuse the tenant's keys (403 tenant_disabled) and hold its queued jobs; reversible."""
    _set_disabled(name, True)


@tenant_cmd.command("enable")
def tenant_enable(name: Annotated[str, typer.Argument(help="The tenant's name or id.")]) -> None:
    """Accept the tenant's keys again and let its queued jobs run."""
    _set_disabled(name, False)


@key_cmd.command("create")
def key_create(
    tenant: Annotated[
        str | None, typer.Option(help="Tenant name or id; omit with --admin.")
    ] = None,
    admin_key: Annotated[
        bool, typer.Option("--admin", help="Create an admin key for /admin routes.")
    ] = False,
    scope: Annotated[
        str,
        typer.Option(help="all, read-only, inference, fine-tune or annotator (docs/api.md)."),
    ] = "all",
    expires_in_days: Annotated[
        float | None, typer.Option(help="The key stops working after this many days.")
    ] = None,
    name: Annotated[str, typer.Option(help="A label to tell keys apart.")] = "",
) -> None:
    """Create another key for a tenant, or an admin key; print it once.

    To rotate a key without downtime, create the new one, move clients to it, then revoke
    the old one.
    """
    from tailorml.platform import auth
    from tailorml.platform.db.engine import session_scope

    if bool(tenant) == admin_key:
        console.print("[red]error:[/red] give exactly one of --tenant NAME or --admin.")
        raise typer.Exit(2)
    settings = Settings()
    try:
        with session_scope(_sessions(settings)) as s:
            row = auth.get_tenant(s, name_or_id=tenant) if tenant else None
            key = auth.create_key(
                s,
                secret=settings.secret(),
                tenant=row,
                name=name,
                scope=scope,
                expires_in_days=expires_in_days,
            )
            _audited(s, "key_create", key.split("-")[1], row.id if row else None)
    except TailorError as exc:
        _fail(exc)
    print(key)


@key_cmd.command("list")
def key_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
) -> None:
    """List keys: prefix, tenant, scope, created, last used, expires, revoked (never secrets)."""
    from sqlalchemy import select

    from tailorml.platform import auth
    from tailorml.platform.db.engine import session_scope
    from tailorml.platform.db.models import Tenant

    try:
        with session_scope(_sessions(Settings())) as s:
            owner = auth.get_tenant(s, name_or_id=tenant) if tenant else None
            rows = auth.list_keys(s, tenant=owner)
            names = dict(s.execute(select(Tenant.id, Tenant.name)).all())
    except TailorError as exc:
        _fail(exc)
    table = Table("prefix", "id", "tenant", "scope", "created", "last used", "expires", "revoked")
    for r in rows:
        table.add_row(
            r.prefix,
            r.id,
            names.get(r.tenant_id or "", "(admin)"),
            r.scope,
            auth.iso(r.created_at),
            auth.iso(r.last_used_at) or "never",
            auth.iso(r.expires_at) or "never",
            auth.iso(r.revoked_at),
        )
    Console(width=200).print(table)


@key_cmd.command("revoke")
def key_revoke(
    prefix: Annotated[
        str, typer.Argument(help="The key's prefix (after 'tk-', before the next '-') or its id.")
    ],
) -> None:
    """Revoke a key by its prefix or id; requests with it answer 401 from now on."""
    from tailorml.platform import auth
    from tailorml.platform.db.engine import session_scope

    try:
        with session_scope(_sessions(Settings())) as s:
            row = auth.revoke_key(s, prefix=prefix)
            _audited(s, "key_revoke", row.prefix, row.tenant_id)
    except TailorError as exc:
        _fail(exc)
    console.print(f"revoked tk-{row.prefix}-...")


def _chain(session, name: str) -> str:  # type: ignore[no-untyped-def]
    from tailorml.platform import audit, auth

    return name if name == audit.OPERATOR_CHAIN else auth.get_tenant(session, name_or_id=name).id


@audit_cmd.command("export")
def audit_export(
    chain: Annotated[str, typer.Argument(help="A tenant's name or id, or 'operator'.")],
    out: Annotated[
        Path | None, typer.Option(help="Write JSON lines here (default: stdout).")
    ] = None,
) -> None:
    """Write a chain's audit events as JSON lines, oldest first (keep a copy elsewhere: its
    last hash must still be found at the same place in the live chain)."""
    import json

    from tailorml.platform import audit
    from tailorml.platform.db.engine import session_scope

    handle = out.open("w", encoding="utf-8") if out else sys.stdout
    count = 0
    try:
        with session_scope(_sessions(Settings())) as s:
            for row in audit.events(s, _chain(s, chain)):
                handle.write(json.dumps(audit.event_object(row), ensure_ascii=False) + "\n")
                count += 1
    except TailorError as exc:
        _fail(exc)
    finally:
        if out:
            handle.close()
    if out:
        console.print(f"{count} events written to {out}")


@audit_cmd.command("verify")
def audit_verify(
    chain: Annotated[str, typer.Argument(help="A tenant's name or id, or 'operator'.")],
) -> None:
    """Recompute a chain's hashes; exit 1 naming each edited or missing event."""
    from tailorml.platform import audit
    from tailorml.platform.db.engine import session_scope

    try:
        with session_scope(_sessions(Settings())) as s:
            result = audit.verify(s, _chain(s, chain))
    except TailorError as exc:
        _fail(exc)
    if result["ok"]:
        console.print(f"chain {chain}: {result['events']} events, intact")
        return
    for problem in result["problems"]:
        console.print(f"[red]event {problem['seq']}:[/red] {problem['problem']}")
    raise typer.Exit(1)


@db_cmd.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (serve and worker also do this on start)."""
    _sessions(Settings())
    console.print("database is up to date")


models_cmd = typer.Typer(help="The base-model catalog; export a fine-tuned model.")
app.add_typer(models_cmd, name="models")


@models_cmd.callback(invoke_without_command=True)
def models(ctx: typer.Context) -> None:
    """List the base-model catalog (``tailor models export`` exports a fine-tuned model)."""
    if ctx.invoked_subcommand is not None:
        return
    from tailorml.models.catalog import catalog

    table = Table("name", "architecture", "tasks", "parameters", "context", "licence")
    for spec in catalog():
        table.add_row(
            spec.name,
            spec.architecture,
            ", ".join(spec.tasks),
            f"{spec.parameters / 1e6:.1f} M",
            str(spec.context_length),
            spec.licence,
        )
    console.print(table)


@models_cmd.command("export")
def models_export(
    model: Annotated[str, typer.Argument(help="A fine-tuned model's id, or its folder.")],
    out: Annotated[Path, typer.Option(help="The folder to write (replaced if it exists).")],
    format: Annotated[
        str, typer.Option(help="adapter (LoRA), merged (Hugging Face safetensors) or onnx.")
    ] = "merged",
) -> None:
    """Export a fine-tuned model as a standard folder (what GET /v1/models/{id}/content serves)."""
    from tailorml.models.export import export_model

    folder = Path(model)
    if not folder.is_dir():
        from tailorml.platform.db.models import Model

        settings = Settings()
        with _sessions(settings)() as session:
            row = session.get(Model, model)
        if row is None:
            console.print(f"[red]No fine-tuned model {model!r} and no such folder.[/red]")
            raise typer.Exit(2)
        folder = Path(row.path)
    try:
        written = export_model(folder, format, out, name=model)
    except TailorError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"Exported {model} as {format} to {written}.")


app.add_typer(data_app, name="data", help="Data preparation: run and check recipes.")


if __name__ == "__main__":
    app()
