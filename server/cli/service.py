"""`serve`, `worker` and `tokens`: the HTTP service, queue workers and API tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from server.cli.base import ConfigOpt, ModelOpt, ScenarioOpt, app, fail, load


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

    Example:  OPSCOPILOT_SERVICE__REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/opscopilot worker --threads 2
    """
    from server.app import run_worker

    settings = load(config)
    run_worker(settings, scenario=scenario_file, model=model, threads=threads)


__all__ = ["Path", "serve", "worker"]
