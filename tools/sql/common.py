"""Plumbing shared by the database view tools: read a dataset once per run as evidence, analyze it safely."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from tools.base import Evidence, Finding, Severity, ToolResult
from tools.common import configured, read_evidence
from tools.redact import redact_evidence_rows
from tools.sources import SqlSource, ToolContext
from tools.sql.blocking import SessionBrief
from tools.sql.thresholds import SqlThresholds
from tools.sql.wording import _session
from tools.world import Engine, ServerRow, SessionRow

log = logging.getLogger("tools.sql.views")

Row = TypeVar("Row", bound=BaseModel)
T = TypeVar("T")
MAX_EVIDENCE_ROWS = 200


def _memo_read(ctx: ToolContext, entity: str, dataset: str, read: Callable[[SqlSource], T]) -> T:
    """`read(source)` once per run and instance: tools that share a dataset (sessions, server) share one
    query. A failure is kept too, so that the next tool does not ask a failing server again."""
    key = ("sql", entity, dataset)
    if key not in ctx.memo:
        try:
            ctx.memo[key] = (True, read(configured(ctx.sources.sql, "SQL")))
        except Exception as exc:  # re-raised below for this tool and every later one
            ctx.memo[key] = (False, exc)
    ok, value = ctx.memo[key]
    if not ok:
        raise value
    result: T = value
    return result


def _read(
    ctx: ToolContext, tool: str, entity: str, dataset: str, read: Callable[[SqlSource], Sequence[Row]]
) -> tuple[Evidence, list[Row] | None]:
    """Read one dataset; a failing source becomes evidence with `error` set instead of an exception."""
    ev, rows = read_evidence(
        "database",
        tool,
        entity,
        lambda: list(_memo_read(ctx, entity, dataset, read)),
        log=log,
        doing=f"reading {dataset} of {entity}",
        failed=f"Could not read {dataset} from {entity}",
    )
    if rows is None:
        return ev, None
    keep_evidence_rows(ev, rows)
    return ev, rows


def keep_evidence_rows(ev: Evidence, rows: Sequence[BaseModel]) -> None:
    dumped = [r.model_dump(mode="json", exclude_none=True) for r in rows]
    ev.rows = redact_evidence_rows(dumped[:MAX_EVIDENCE_ROWS])
    ev.row_count = len(rows)
    ev.truncated = len(rows) > MAX_EVIDENCE_ROWS


def _peek(ctx: ToolContext, entity: str, dataset: str, read: Callable[[SqlSource], T]) -> T | None:
    """A second dataset a tool may use when it can be read (shared through the run's memo), else None."""
    try:
        return _memo_read(ctx, entity, dataset, read)
    except Exception as exc:  # optional context: the tool's own evidence stands without it
        log.info("database: %s of %s not available: %s", dataset, entity, exc)
        return None


def _analyze(ev: Evidence, build: Callable[[], list[Finding]]) -> ToolResult:
    try:
        findings = build()
    except Exception as exc:  # an analyzer bug must not sink the investigation
        log.exception("database analyzer %s failed on %s", ev.tool, ev.entity)
        ev.error = f"analysis failed: {type(exc).__name__}: {exc}"
        ev.summary = f"{ev.tool} read {ev.row_count} rows from {ev.entity} but could not analyze them: {exc}"
        return ToolResult(evidence=[ev])
    return ToolResult(evidence=[ev], findings=findings)


def _engine(ctx: ToolContext, entity: str) -> Engine | None:
    """The instance's engine, or None when the source cannot say (the analysis then stays engine-neutral)."""
    try:
        return ctx.sources.sql.instances().get(entity) if ctx.sources.sql else None
    except Exception as exc:  # the engine only sharpens the wording
        log.warning("database: engine of %s unknown: %s", entity, exc)
        return None


def thresholds(ctx: ToolContext) -> SqlThresholds:
    """This run's absolute thresholds (tools/sql/thresholds.py), defaults when none are configured."""
    return SqlThresholds.from_options(ctx.options)


def as_dict(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


SEVERITY: dict[str, Severity] = {
    "ok": Severity.INFO,
    "info": Severity.INFO,
    "warning": Severity.WARNING,
    "critical": Severity.CRITICAL,
}


def _who_of(s: SessionBrief) -> str:
    return _session(s.session_id, s.login_name, s.host_name, s.program_name)


def _server(ctx: ToolContext, tool: str, entity: str) -> tuple[Evidence, ServerRow | None, ServerRow | None]:
    ev, rows = _read(ctx, tool, entity, "server", lambda src: src.server(entity))
    if not rows:
        if rows is not None:
            ev.summary = f"{entity} returned no server state"
        return ev, None, None
    return ev, rows[0], rows[1] if len(rows) > 1 else None


def _sessions(ctx: ToolContext, entity: str) -> list[SessionRow] | None:
    return _peek(ctx, entity, "sessions", lambda src: src.sessions(entity))
