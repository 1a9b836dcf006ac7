"""An entity's series (any tag value equal to its name, or a Prometheus host:port), read as evidence."""

from __future__ import annotations

import logging

from tools.base import Evidence
from tools.common import configured, read_evidence
from tools.sources import MetricSource, ToolContext
from tools.world import Series


def _matches(tags: dict[str, str], entity: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in tags.items() if v == entity or (k == "instance" and v.split(":")[0] == entity)]


def entity_series(src: MetricSource, ctx: ToolContext, entity: str) -> list[Series]:
    """Series whose tags name the entity (any tag value equal to it), over the history window."""
    pairs = sorted({pair for s in src.catalog() for pair in _matches(s.tags, entity)})
    out: dict[str, Series] = {}
    for key, value in pairs:
        for s in src.series(match={key: value}, start=ctx.history_start, end=ctx.end):
            if _matches(s.tags, entity):
                out.setdefault(s.label, s)
    return list(out.values())


def read_series(
    ctx: ToolContext, tool: str, entity: str, log: logging.Logger
) -> tuple[Evidence, list[Series] | None]:
    """The entity's series as evidence of `tool`; a failing source becomes the evidence's error."""
    return read_evidence(
        "metrics",
        tool,
        entity,
        lambda: entity_series(configured(ctx.sources.metrics, "metric"), ctx, entity),
        log=log,
        doing=f"reading series of {entity}",
        failed=f"Could not read metrics for {entity}",
    )
