"""The FastAPI app (`opscopilot serve`) and the worker process (`opscopilot worker`).

Embedded defaults: a SQLite store, its durable queue and in-process workers; PostgreSQL and Redis
Streams when the settings name them. The OpenAPI document is versioned under /api/v1.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from server import runtime
from server.auth import Auth
from server.batcher import GroupCommit
from server.deps import AppContext
from server.intake import Intake
from server.investigations import Investigations
from server.notify import Notifier
from server.observability import Metrics, Tracer, configure_logging, otlp_provider
from server.queue import open_queue
from server.settings import Settings
from server.worker import Workers

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def source_ref_for(settings: Settings, scenario: Path | None) -> tuple[str, datetime | None]:
    """The sources to serve and their clock: a scenario's recorded world and time, or live and now."""
    if scenario is not None:
        from evals.loader import ScenarioError, load_scenario

        try:
            sc = load_scenario(scenario)
        except ScenarioError as exc:
            raise ValueError(str(exc)) from None
        return runtime.scenario_ref(scenario), sc.now
    est = settings.estate
    if est.empty and est.knowledge_seed is None and settings.knowledge.chroma_path is None:
        raise ValueError(
            "nothing to investigate: give --scenario FILE (a recorded world) or configure the live "
            "`estate` in the settings"
        )
    return "live", None


def build_context(
    settings: Settings,
    *,
    scenario: Path | None = None,
    model: str | None = None,
    no_auth: bool = False,
    tracer_provider: Any = None,
) -> AppContext:
    store = runtime.open_store(settings)
    service = Investigations(settings, store, model_override=model)
    queue = open_queue(settings, store)
    metrics = Metrics(queue.depth)
    service.hooks.append(metrics.on_event)
    provider = tracer_provider or (
        otlp_provider(settings.service.otel_endpoint) if settings.service.otel_endpoint else None
    )
    if provider is not None:
        service.hooks.append(Tracer(provider).on_event)
    if settings.service.notify:
        service.on_finished = Notifier(settings.service.notify, settings.service.public_url).send
    ref, clock = source_ref_for(settings, scenario)
    return AppContext(
        settings=settings,
        store=store,
        service=service,
        queue=queue,
        intake=Intake(service, ref, queue, clock),
        auth=Auth(store, settings.service.webhooks),
        metrics=metrics,
        source_ref=ref,
        no_auth=no_auth,
        clock=clock,
    )


def create_app(ctx: AppContext, workers: int | None = None) -> FastAPI:
    """The app over a built context; `workers` in-process worker threads start with it."""
    n = ctx.settings.service.workers if workers is None else workers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.ingest = start_ingest(ctx)
        pool = Workers(ctx.service, ctx.queue, n).start() if n > 0 else None
        ctx.extras["workers"] = pool
        threading.Thread(target=warm_up, args=(ctx,), daemon=True, name="warm-up").start()
        try:
            yield
        finally:
            if pool is not None:
                pool.close()
            ctx.ingest.close()
            ctx.service.close()
            ctx.store.close()

    app = FastAPI(
        title="OpsCopilot API",
        version=API_VERSION,
        summary="Chat (AG-UI over SSE), alert webhooks, investigations and the approval queue."
        + (" This server runs WITHOUT authentication (--no-auth, loopback only)." if ctx.no_auth else ""),
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    from server.routes import API_PREFIX, api_router, ops_router
    from server.routes import alerts as alert_routes

    # the alert webhook first: a plain Starlette endpoint (the hot path), documented by hand below
    webhook = API_PREFIX + alert_routes.WEBHOOK_PATH
    app.router.add_route(webhook, alert_routes.post_alert, methods=["POST"], include_in_schema=False)
    app.include_router(api_router)
    app.include_router(ops_router)
    generated_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = alert_routes.document(generated_openapi(), API_PREFIX)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    from server.web import mount_console

    mount_console(  # the web console at / (JSON clients get where the API is)
        app,
        {
            "name": "OpsCopilot",
            "api": "/api/v1",
            "openapi": "/api/v1/openapi.json",
            "authentication": "none (--no-auth: loopback only)" if ctx.no_auth else "bearer token or session",
        },
    )

    @app.exception_handler(RequestValidationError)
    async def validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "the request is malformed", "problems": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):  # FastAPI could not parse it
            problem = {"detail": "the request body is not valid JSON", "problems": [f"body: {exc.detail}"]}
            return JSONResponse(problem, status_code=422)
        return JSONResponse(
            {"detail": exc.detail, "problems": []}, status_code=exc.status_code, headers=exc.headers
        )

    return app


def start_ingest(ctx: AppContext) -> GroupCommit[Any, Any]:
    """The alert writer: one thread writing concurrent webhook bodies in one transaction each batch.
    With Redis, the new investigations are published after the batch's 202s are sent."""
    intake = ctx.intake
    if ctx.queue.transactional:
        return GroupCommit(intake.accept_many, name="alert-writer")
    intake.defer_publish = True
    return GroupCommit(intake.accept_many, name="alert-writer", after=intake.publish)


def warm_up(ctx: AppContext) -> None:
    """Load the model, the sources, the remediation runtime and the graph before the first request."""
    try:
        _ = ctx.service.graph  # first: quick, and it opens the checkpoints
        ctx.service.model()
        ctx.service.sources(ctx.source_ref)
        ctx.service.actions(ctx.source_ref)  # the policy, the audit log and the executors
    except Exception:  # the first request will report it properly
        log.exception("warm-up failed")


def first_start(ctx: AppContext, host: str, port: int) -> None:
    """No token yet: create an admin token and a one-time sign-in link, printed once (as Jupyter does)."""
    if ctx.no_auth or ctx.auth.any_api_token():
        return
    token = ctx.auth.create("admin", "admin")
    link = ctx.auth.signin_link_token("admin", "admin")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(
        "First start: created the admin API token (shown once; only its hash is stored):\n"
        f"    {token}\n"
        "Sign in from a browser (one-time link, valid 30 minutes):\n"
        f"    http://{shown}:{port}/api/v1/auth/signin?token={link}\n",
        flush=True,
    )


def run_server(
    settings: Settings,
    *,
    host: str,
    port: int,
    scenario: Path | None,
    model: str | None,
    no_auth: bool,
    workers: int | None,
) -> None:
    import uvicorn

    if no_auth and not is_loopback(host):
        raise ValueError(f"--no-auth is refused on {host}: bind a loopback address (127.0.0.1) or use tokens")
    configure_logging(settings.log_level, settings.service.log_format)
    ctx = build_context(settings, scenario=scenario, model=model, no_auth=no_auth)
    first_start(ctx, host, port)
    app = create_app(ctx, workers)
    if no_auth:
        print(f"Serving on http://{host}:{port} WITHOUT authentication (--no-auth)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def run_worker(settings: Settings, *, scenario: Path | None, model: str | None, threads: int) -> None:
    """A worker process: take investigations from the queue until SIGTERM/SIGINT."""
    configure_logging(settings.log_level, settings.service.log_format)
    ctx = build_context(settings, scenario=scenario, model=model)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pool = Workers(ctx.service, ctx.queue, threads).start()
    print(f"worker {pool.name}: {threads} thread(s) on the {ctx.queue.name} queue", flush=True)
    stop.wait()
    pool.close()
    ctx.service.close()
    ctx.store.close()
