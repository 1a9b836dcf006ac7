"""`serve`, `worker` and `tokens`: the HTTP service, queue workers and API tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from server.cli.base import ConfigOpt, ModelOpt, ScenarioOpt, app, err, fail, load, out, tokens_app


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; --no-auth only on a loopback address.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    scenario_file: ScenarioOpt = None,
    model: ModelOpt = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No tokens (local demos and tests; loopback binds only).")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(help="In-process investigation workers (default: settings).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the HTTP API (/api/v1: chat over AG-UI SSE, alert webhooks, investigations, approvals)
    on the embedded defaults: a SQLite store and in-process workers.

    Example:

        .venv/bin/opscopilot serve --scenario evals/scenarios/demo-checkout-blocking.yaml
            --model none --no-auth
    """
    from server.app import run_server

    settings = load(config)
    try:
        run_server(settings, host=host, port=port, scenario=scenario_file, model=model, no_auth=no_auth,
                   workers=workers)  # fmt: skip
    except ValueError as exc:
        fail(str(exc))


@app.command()
def worker(
    scenario_file: ScenarioOpt = None,
    model: ModelOpt = None,
    threads: Annotated[int, typer.Option(help="Investigations run at once by this process.")] = 1,
    config: ConfigOpt = None,
) -> None:
    """Take investigations from the queue (the store's, or Redis Streams when service.redis_url is
    set) and run them; several workers share the work, a crashed one's work is taken over.

    Example (with `serve` on the same store, it takes the investigations that alerts start):

        .venv/bin/opscopilot worker --scenario evals/scenarios/demo-checkout-blocking.yaml --threads 2
    """
    from server.app import run_worker

    settings = load(config)
    try:
        run_worker(settings, scenario=scenario_file, model=model, threads=threads)
    except ValueError as exc:
        fail(str(exc))


def _auth(config: Path | None):  # type: ignore[no-untyped-def]
    from server import runtime
    from server.auth import Auth
    from server.store import StoreError

    settings = load(config)
    try:
        store = runtime.open_store(settings)
    except StoreError as exc:
        fail(str(exc))
    return Auth(store, settings.service.webhooks)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="Who or what uses the token (recorded as the requester).")],
    role: Annotated[str, typer.Option(help="viewer | operator | approver | admin")] = "viewer",
    config: ConfigOpt = None,
) -> None:
    """Create an API token and print it once (only its hash is stored).

    Example:  .venv/bin/opscopilot tokens create --name alice --role approver
    """
    from server.auth import AuthError

    auth = _auth(config)
    try:
        token = auth.create(name, role)
    except AuthError as exc:
        fail(str(exc))
    out.print(token, markup=False)
    err.print(f"[dim]token for {name.strip()} ({role}); it is not shown again[/]")


@tokens_app.command("list")
def tokens_list(config: ConfigOpt = None) -> None:
    """List API tokens (names, roles, created, revoked; never the tokens).

    Example:  .venv/bin/opscopilot tokens list
    """
    for row in _auth(config).list():
        state = "revoked" if row["revoked"] else "active"
        out.print(
            f"{row['id']}  {row['name']:<20} {row['role']:<9} {row['created_at'][:19]}  {state}", markup=False
        )


@tokens_app.command("revoke")
def tokens_revoke(
    name: Annotated[str, typer.Argument(help="The token's name or id.")], config: ConfigOpt = None
) -> None:
    """Revoke every token of a name (or one token by id).

    Example:  .venv/bin/opscopilot tokens revoke alice
    """
    n = _auth(config).revoke(name)
    if not n:
        fail(f"no token named {name!r}")
    out.print(f"revoked {n} token(s) of {name}", markup=False)


__all__ = ["Path", "serve", "tokens_create", "tokens_list", "tokens_revoke", "worker"]
