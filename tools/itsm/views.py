"""The ITSM specialist's view tools: open incidents and overlapping changes, ranked by relevance."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.base import Evidence, Severity, ToolResult, ViewTool, view_tool
from tools.common import configured, finding_on, keep_rows, read_evidence
from tools.sources import ToolContext
from tools.world import ItsmChange, ItsmIncident

log = logging.getLogger(__name__)

MAX_ROWS = 50
MAX_FINDINGS = 8
ANY_ENTITY = {"*", "", "all", "any"}
# Name parts too common to tie two CIs together: environments, tiers, engines, device roles.
GENERIC_TOKENS = {
    "prod", "production", "prd", "stg", "staging", "dev", "test", "qa", "uat", "dr",
    "db", "database", "api", "app", "web", "srv", "server", "host", "node", "vm", "svc", "service",
    "sql", "mssql", "pg", "postgres", "mysql", "primary", "replica", "cluster", "core", "edge",
    "sw", "rtr", "fw", "lb", "the", "and", "for", "on", "of",
}  # fmt: skip
Relevance = Literal["exact CI", "related CI", "unrelated"]
_RANK: dict[str, int] = {"exact CI": 0, "related CI": 1, "unrelated": 2}


# --- analysis -----------------------------------------------------------------------------------


def name_tokens(name: str) -> set[str]:
    """Distinctive parts of a CI or service name: `payments-api` -> {"payments"}."""
    parts = re.split(r"[^a-z0-9]+", name.lower())
    return {p for p in parts if len(p) >= 3 and not p.isdigit() and p not in GENERIC_TOKENS}


def relevance(ci: str | None, text: str, entities: Sequence[str]) -> tuple[Relevance, list[str]]:
    """How a record on `ci` (described by `text`) relates to the investigated entities: the exact
    CI, a related CI (shares a distinctive name part, or its text names an entity), or unrelated."""
    wanted = {e.lower() for e in entities}
    if ci and ci.lower() in wanted:
        return "exact CI", []
    ours = set().union(*(name_tokens(e) for e in entities)) if entities else set()
    shared = sorted(ours & name_tokens(ci or ""))
    mentioned = sorted(e for e in entities if e and e.lower() in text.lower())
    if shared or mentioned:
        return "related CI", shared or mentioned
    return "unrelated", []


def overlaps(change: ItsmChange, start: datetime, end: datetime) -> bool:
    """start_date <= window end and (no end_date or end_date >= window start)."""
    if change.start_date is None or change.start_date > end:
        return False
    return change.end_date is None or change.end_date >= start


class RankedChange(BaseModel):
    change: ItsmChange
    relevance: Relevance
    shared: list[str] = Field(default_factory=list)


def rank_changes(
    changes: Sequence[ItsmChange], entities: Sequence[str], start: datetime, end: datetime
) -> list[RankedChange]:
    """Changes overlapping [start, end]: exact CI first, then related CIs, then the rest;
    within each, the latest start first."""
    ranked = []
    for c in changes:
        if overlaps(c, start, end):
            rel, shared = relevance(c.cmdb_ci, c.short_description, entities)
            ranked.append(RankedChange(change=c, relevance=rel, shared=shared))
    ranked.sort(key=lambda r: (r.change.start_date or start).timestamp(), reverse=True)
    return sorted(ranked, key=lambda r: _RANK[r.relevance])


def priority_severity(priority: str | None) -> Severity:
    """ServiceNow priority "1 - Critical" -> critical, "2 - High" -> warning, the rest -> info."""
    m = re.match(r"\s*[Pp]?(\d)", priority or "")
    level = int(m.group(1)) if m else 5
    return Severity.CRITICAL if level == 1 else Severity.WARNING if level == 2 else Severity.INFO


# --- wording and plumbing -----------------------------------------------------------------------


def _t(ts: datetime, ref: datetime) -> str:
    return f"{ts:%H:%M}" if ts.date() == ref.date() else f"{ts:%Y-%m-%d %H:%M}"


def _window(ctx: ToolContext) -> str:
    if ctx.start.date() == ctx.end.date():
        return f"{ctx.start:%H:%M}–{ctx.end:%H:%M} UTC"
    return f"{ctx.start:%Y-%m-%d %H:%M} – {ctx.end:%Y-%m-%d %H:%M} UTC"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _tie(rel: Relevance, shared: list[str], entity: str) -> str:
    if rel == "exact CI":
        return f"on {entity} itself"
    if rel == "related CI" and set(shared) <= name_tokens(entity):
        return f"related CI of {entity} (shares {', '.join(repr(s) for s in shared)})"
    if rel == "related CI":
        return f"related to {entity} (its description names {', '.join(shared)})"
    return "no tie to the investigated entity"


def _read(ctx: ToolContext, tool: str, entity: str, read: Any) -> tuple[Evidence, list[Any] | None]:
    return read_evidence(
        "itsm",
        tool,
        entity,
        lambda: list(read(configured(ctx.sources.itsm, "ITSM"))),
        log=log,
        doing=f"reading records for {entity}",
        failed=f"Could not read ITSM records for {entity}",
    )


# --- tools --------------------------------------------------------------------------------------


@view_tool("itsm", detects=("incidents",))
def open_incidents(ctx: ToolContext, entity: str) -> ToolResult:
    """Open ITSM incidents for a service or CI (`*` for all): those on the exact CI, then those on
    related CIs (sharing a distinctive name part such as "payments" in payments-api and
    payments-db, or naming the entity in their description). Incidents on unrelated CIs stay in
    the evidence only. Findings: `open_incident` (priority 1 critical, 2 warning, else info) or one
    `no_open_incidents` info finding.
    """
    ev, found = _read(ctx, "open_incidents", entity, lambda s: s.incidents(ci=None, open_only=True))
    if found is None:
        return ToolResult(evidence=[ev])
    incidents: list[ItsmIncident] = found
    everything = entity.strip().lower() in ANY_ENTITY
    rated = [
        (i, *relevance(i.cmdb_ci, i.short_description, [] if everything else [entity])) for i in incidents
    ]
    rated.sort(key=lambda x: (_RANK[x[1]], priority_severity(x[0].priority).rank * -1))
    keep_rows(ev, [{**i.model_dump(mode="json"), "relevance": rel} for i, rel, _ in rated], MAX_ROWS)
    relevant = [x for x in rated if everything or x[1] != "unrelated"]
    scope = "in the estate" if everything else f"for {entity} or related CIs"
    ev.summary = f"{_plural(len(incidents), 'open incident')}; {len(relevant)} {scope}"
    findings = []
    for i, rel, shared in relevant[:MAX_FINDINGS]:
        opened = f", opened {_t(i.opened_at, ctx.now)} UTC" if i.opened_at else ""
        tie = "" if everything else f"; {_tie(rel, shared, entity)}"
        title = (
            f"Open incident {i.number} on {i.cmdb_ci or 'no CI'} ({i.priority or 'no priority'}, "
            f"{i.state or 'open'}): '{i.short_description}'{opened}{tie}"
        )
        detail = f"Assignment group: {i.assignment_group}." if i.assignment_group else ""
        findings.append(
            finding_on(
                ev,
                "open_incident",
                priority_severity(i.priority),
                title,
                detail,
                relevance=rel,
                **i.model_dump(mode="json"),
            )
        )
    if not relevant:
        others = len(incidents)
        detail = f"{_plural(others, 'open incident')} on other, unrelated CIs." if others else ""
        findings.append(
            finding_on(ev, "no_open_incidents", Severity.INFO, f"No open incidents {scope}", detail)
        )
    return ToolResult(evidence=[ev], findings=findings)


@view_tool("itsm", detects=("changes",))
def recent_changes(ctx: ToolContext, entity: str) -> ToolResult:
    """Change requests overlapping the incident window (start_date <= window end and end_date
    missing or >= window start) for a service or CI (`*` for all), ranked: the exact CI, then
    related CIs (a shared distinctive name part, e.g. payments-db for payments-api, marked
    "related CI"), then the rest. Findings: `change_in_window` per exact or related change
    (warning), or one `no_changes_in_window` info finding.
    """
    ev, found = _read(
        ctx,
        "recent_changes",
        entity,
        lambda s: s.changes(start=ctx.lead_start or ctx.start, end=ctx.end, ci=None),
    )
    if found is None:
        return ToolResult(evidence=[ev])
    everything = entity.strip().lower() in ANY_ENTITY
    ranked = rank_changes(found, [] if everything else [entity], ctx.lead_start or ctx.start, ctx.end)
    rows = [
        {**r.change.model_dump(mode="json"), "relevance": r.relevance, "shared": r.shared} for r in ranked
    ]
    keep_rows(ev, rows, MAX_ROWS)
    relevant = [r for r in ranked if everything or r.relevance != "unrelated"]
    scope = "in the estate" if everything else f"on {entity} or related CIs"
    ev.summary = f"{_plural(len(ranked), 'change')} overlapping {_window(ctx)}; {len(relevant)} {scope}"
    findings = []
    for r in relevant[:MAX_FINDINGS]:
        c = r.change
        assert c.start_date is not None  # overlapping changes always have one
        begin = _t(c.start_date, ctx.now)
        if c.end_date is None:
            timing = f"started {begin} UTC with no end date"
        else:
            timing = f"ran {begin}–{_t(c.end_date, ctx.now)} UTC"
            timing += f" (in progress at {_t(ctx.now, ctx.now)} UTC)" if c.end_date > ctx.now else ""
        title = (
            f"Change {c.number} ({c.cmdb_ci or 'no CI'}, state {c.state or 'unknown'}, "
            f"risk {c.risk or 'unknown'}) "
            f"'{c.short_description}' {timing}, overlapping the investigation window {_window(ctx)}"
        )
        tie = _tie(r.relevance, r.shared, entity)
        detail = "" if everything else f"{tie[0].upper()}{tie[1:]}."
        severity = Severity.INFO if everything else Severity.WARNING
        data = {"relevance": r.relevance, "shared": r.shared, **c.model_dump(mode="json")}
        findings.append(finding_on(ev, "change_in_window", severity, title, detail, **data))
    if not relevant:
        others = len(ranked)
        detail = f"{_plural(others, 'change')} in the window on other, unrelated CIs." if others else ""
        title = f"No changes {scope} overlapping the investigation window {_window(ctx)}"
        findings.append(finding_on(ev, "no_changes_in_window", Severity.INFO, title, detail))
    return ToolResult(evidence=[ev], findings=findings)


ITSM_TOOLS: list[ViewTool] = [open_incidents, recent_changes]
