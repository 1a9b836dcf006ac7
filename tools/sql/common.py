"""Plumbing shared by the database view tools: read a dataset as evidence, analyze it safely."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from pydantic import BaseModel

from tools.base import Evidence, Finding, ToolResult
from tools.common import configured, read_evidence
from tools.redact import redact_evidence_rows
from tools.sources import SqlSource, ToolContext
from tools.world import Engine

log = logging.getLogger("tools.sql.views")

Row = TypeVar("Row", bound=BaseModel)
MAX_EVIDENCE_ROWS = 200


def _read(
    ctx: ToolContext, tool: str, entity: str, dataset: str, read: Callable[[SqlSource], Sequence[Row]]
) -> tuple[Evidence, list[Row] | None]:
    """Read one dataset; a failing source becomes evidence with `error` set instead of an exception."""
    ev, rows = read_evidence(
        "database",
        tool,
        entity,
        lambda: list(read(configured(ctx.sources.sql, "SQL"))),
        log=log,
        doing=f"reading {dataset} of {entity}",
        failed=f"Could not read {dataset} from {entity}",
    )
    if rows is None:
        return ev, None
    dumped = [r.model_dump(mode="json") for r in rows]
    ev.rows = redact_evidence_rows(dumped[:MAX_EVIDENCE_ROWS])
    ev.row_count = len(rows)
    ev.truncated = len(rows) > MAX_EVIDENCE_ROWS
    return ev, rows


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
