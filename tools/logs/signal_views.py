"""The logs specialist's views beyond error lines: a search over the whole window with the request's terms
(server-side filters and counts), and what lines at any level say (slow calls, pool saturation, 5xx
responses, retries, failures towards a named peer, changes just before the first error)."""

from __future__ import annotations

import logging
from datetime import datetime

from tools.base import Evidence, Finding, Severity, ToolResult, ViewTool, view_tool
from tools.common import configured, finding_on, keep_rows, read_evidence
from tools.logs import signals as sg
from tools.logs.analysis import LEVEL_RANK, message_template
from tools.redact import redact_text
from tools.sources import LogSummary, ToolContext
from tools.thresholds import thresholds
from tools.world import LogRecord

log = logging.getLogger(__name__)

MAX_ROWS = 50
MAX_RECORDS = 5000
_ERRORISH = ("error", "fail", "exception", "fatal", "panic", "timeout", "refused")


def _clip(text: str, limit: int = 160) -> str:
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _at(ts: datetime | None, ref: datetime) -> str:
    """HH:MM UTC on the reference day, else the date too."""
    if ts is None:
        return "?"
    return f"{ts:%H:%M} UTC" if ts.date() == ref.date() else f"{ts:%Y-%m-%d %H:%M} UTC"


def _secs(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.3g} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- log_search ---------------------------------------------------------------------------------


def _templates(summary: LogSummary) -> list[tuple[str, int, datetime | None, datetime | None, str]]:
    """The summary's distinct messages folded into templates: (template, count, first, last, example)."""
    out: dict[str, list[object]] = {}
    for m in summary.messages:
        t = message_template(m.message)
        row = out.setdefault(t, [t, 0, m.first_seen, m.last_seen, m.message])
        row[1] = int(row[1]) + m.count  # type: ignore[call-overload]
        if m.first_seen and (row[2] is None or m.first_seen < row[2]):  # type: ignore[operator]
            row[2] = m.first_seen
        if m.last_seen and (row[3] is None or m.last_seen > row[3]):  # type: ignore[operator]
            row[3], row[4] = m.last_seen, m.message
    rows = [tuple(r) for r in out.values()]
    return sorted(rows, key=lambda r: -int(r[1]))  # type: ignore[arg-type,return-value]


@view_tool("logs", detects=("errors",))
def log_search(ctx: ToolContext, entity: str) -> ToolResult:
    """Search one entity's logs over the whole window for the request's explicit terms (quoted strings,
    "containing X", status codes, error codes): the backend filters and counts every matching line
    (never only the latest ones). Finding: `log_search` with the number of matching lines, first and
    last occurrence and per-template counts; nothing when the request named no terms.
    """
    if not ctx.terms:
        return ToolResult()
    ev, summary = read_evidence(
        "logs",
        "log_search",
        entity,
        lambda: configured(ctx.sources.logs, "log").summarize(
            entities=[entity], start=ctx.start, end=ctx.end, terms=ctx.terms, size=200
        ),
        log=log,
        doing=f"search for {ctx.terms} on {entity}",
        failed=f"Could not search the logs of {entity}",
    )
    if summary is None:
        return ToolResult(evidence=[ev])
    terms = " or ".join(f'"{t}"' for t in ctx.terms)
    window = ctx.window_label or f"{ctx.start:%Y-%m-%d %H:%M}–{ctx.end:%H:%M} UTC"
    rows = _templates(summary)
    keep_rows(
        ev,
        [
            {
                "template": redact_text(str(t)),
                "count": n,
                "first_seen": f.isoformat() if f else None,  # type: ignore[union-attr]
                "last_seen": last.isoformat() if last else None,
                "example": _clip(str(x), 300),
            }  # type: ignore[union-attr]
            for t, n, f, last, x in rows
        ],
        MAX_ROWS,
    )
    ev.summary = f"{_plural(summary.total, 'line')} containing {terms} for {entity} in {window}"
    if not summary.total:
        title = f"No lines containing {terms} on {entity} in {window}"
        return ToolResult(
            evidence=[ev], findings=[finding_on(ev, "log_search", Severity.INFO, title, "", total=0)]
        )
    ref = ctx.end
    shown = "; ".join(
        f'{n} × "{_clip(str(x), 120)}" ({_at(f, ref)}' + (f" to {_at(last, ref)})" if last != f else ")")  # type: ignore[arg-type]
        for _, n, f, last, x in rows[:5]
    )
    more = f"; and {len(rows) - 5} more templates" if len(rows) > 5 else ""
    title = (
        f"{_plural(summary.total, 'line')} containing {terms} on {entity} in {window}: first at "
        f"{_at(summary.first_seen, ref)}, last at {_at(summary.last_seen, ref)}, "
        f"in {_plural(len(rows), 'template')}"
    )
    levels = ", ".join(
        f"{k} {v}" for k, v in sorted(summary.by_severity.items(), key=lambda kv: -LEVEL_RANK[kv[0]])
    )
    detail = f"By template: {shown}{more}. By level: {levels}."
    bad = (
        any(LEVEL_RANK.get(k, 1) >= LEVEL_RANK["error"] for k in summary.by_severity)
        or any(w in " ".join(ctx.terms).lower() for w in _ERRORISH)
        or any(t.isdigit() and t.startswith("5") and len(t) == 3 for t in ctx.terms)
    )
    severity = Severity.WARNING if bad else Severity.INFO
    data = {
        "total": summary.total,
        "terms": ctx.terms,
        "first_seen": summary.first_seen,
        "last_seen": summary.last_seen,
    }
    return ToolResult(evidence=[ev], findings=[finding_on(ev, "log_search", severity, title, detail, **data)])


# --- log_signals --------------------------------------------------------------------------------


def _read(ctx: ToolContext, entity: str) -> tuple[Evidence, list[LogRecord] | None]:
    lead = ctx.start - sg.PRECURSOR_WINDOW  # a change just before the window may be the cause
    ev, records = read_evidence(
        "logs",
        "log_signals",
        entity,
        lambda: configured(ctx.sources.logs, "log").search(
            entities=[entity], start=lead, end=ctx.end, min_severity="debug", limit=MAX_RECORDS
        ),
        log=log,
        doing=f"reading the logs of {entity}",
        failed=f"Could not read the logs of {entity}",
    )
    return ev, None if records is None else sorted(records, key=lambda r: r.timestamp)


def _slow(ev: Evidence, s: sg.SlowCalls, ref: datetime) -> Finding:
    before = f"; before that {_secs(s.before_s)}" if s.before_s is not None else ""
    title = (
        f'Slow calls on {ev.entity}: "{_clip(s.example, 100)}" — median {_secs(s.median_s)}, up to '
        f"{_secs(s.max_s)} over {_plural(s.slow, 'line')} since {_at(s.since, ref)}{before}"
    )
    limit = _secs(s.threshold_s)
    detail = f"Durations reported by the lines themselves (any level); slow means at or above {limit}."
    severity = Severity.CRITICAL if s.median_s >= 5 * s.threshold_s else Severity.WARNING
    return finding_on(ev, "slow_calls", severity, title, detail, **s.model_dump(mode="json"))


def _pool(ev: Evidence, p: sg.PoolSaturation, ref: datetime) -> Finding:
    full = p.used >= p.size
    name = f" {p.name}" if p.name else ""
    waiting = f", {p.waiting} waiting" if p.waiting else ""
    word = "exhausted" if full else "saturated"
    title = (
        f"Connection pool{name} on {ev.entity} {word}: {p.used}/{p.size} in use{waiting}, "
        f"since {_at(p.since, ref)}" + (f" (was {p.before})" if p.before else "")
    )
    detail = (
        f"{_plural(p.lines, 'pool line')} in a row at or near the pool's size; callers wait for a free slot."
    )
    severity = Severity.CRITICAL if full and p.waiting else Severity.WARNING
    return finding_on(ev, "pool_saturated", severity, title, detail, **p.model_dump(mode="json"))


def _dependency(ev: Evidence, d: sg.DependencyFailure, ref: datetime) -> Finding:
    span = (
        _at(d.first_seen, ref)
        if d.first_seen == d.last_seen
        else f"{_at(d.first_seen, ref)}–{_at(d.last_seen, ref)}"
    )
    title = (
        f"{ev.entity} → {d.peer}: {_plural(d.count, 'line')} of {', '.join(d.kinds)} "
        f"({d.worst} level) {span}: "
        f'"{_clip(d.example, 120)}"'
    )
    detail = (
        f"{ev.entity} depends on {d.peer_host}: what is wrong there may be the cause of what "
        f"{ev.entity} reports."
    )
    severity = (
        Severity.WARNING if d.count >= 3 or LEVEL_RANK[d.worst] >= LEVEL_RANK["error"] else Severity.INFO
    )
    return finding_on(ev, "dependency_failure", severity, title, detail, **d.model_dump(mode="json"))


def _precursor(ev: Evidence, p: sg.Precursor, ref: datetime) -> Finding:
    lead = _secs(p.lead_s)
    title = (
        f"What changed on {ev.entity} before the first error: {p.change} at {p.at:%H:%M:%S} UTC "
        f'({lead} before): "{_clip(p.message, 140)}"'
    )
    detail = f'First error at {_at(p.first_error, ref)}: "{_clip(p.first_error_message, 140)}".'
    return finding_on(ev, "log_precursor", Severity.WARNING, title, detail, **p.model_dump(mode="json"))


@view_tool("logs", detects=("errors", "latency", "connections", "changes"))
def log_signals(ctx: ToolContext, entity: str) -> ToolResult:
    """Read what one entity's log lines say at ANY level (info included) in the window, plus the 30 minutes
    before it for precursors.

    Findings: `slow_calls` when a template's reported durations ("completed in 9.01 seconds", "took 2300
    ms") are at or above `slow_call_s` (default 2 s) or 5x their earlier level; `pool_saturated` when pool
    lines ("active=20, total=20, waiting=34", "pool 20/20") show >= 90% in use; `server_errors` when 5xx
    status codes are >= 5% of the lines carrying a status; `retries` (retry / gave-up lines);
    `dependency_failure` per peer named in timeout / no response / refused / unreachable lines (host:port
    or host name); `log_precursor` for a configuration reload, deploy, restart, failover, schema change or
    feature flag logged within 30 minutes before the first error.
    """
    ev, records = _read(ctx, entity)
    if records is None:
        return ToolResult(evidence=[ev])
    limits = thresholds(ctx.options)
    in_window = [r for r in records if r.timestamp >= ctx.start]
    ref = ctx.end
    findings: list[Finding] = []
    findings += [_slow(ev, s, ref) for s in sg.slow_calls(in_window, limits.slow_call_s)[:3]]
    if (p := sg.pool_saturation(in_window, limits.pool_saturation)) is not None:
        findings.append(_pool(ev, p, ref))
    codes = sg.status_counts(in_window)
    if codes is not None and codes.server_errors and codes.error_share >= limits.server_error_share:
        by = ", ".join(f"{c} × {n}" for c, n in codes.by_code.items())
        title = (
            f"{codes.server_errors} server errors (5xx) on {entity}: {codes.error_share:.0%} of "
            f"{codes.total} lines with a status code ({by}), "
            f"{_at(codes.first_error, ref)} to {_at(codes.last_error, ref)}"
        )
        findings.append(
            finding_on(ev, "server_errors", Severity.WARNING, title, "", **codes.model_dump(mode="json"))
        )
    deps = sg.dependency_failures(in_window, {entity.lower()})
    findings += [_dependency(ev, d, ref) for d in deps[:4]]
    if (r := sg.retries(in_window)) is not None and r.retries + r.gave_up >= 3:
        gave = f", gave up {_plural(r.gave_up, 'time')}" if r.gave_up else ""
        tries = f"{r.retries} {'retry' if r.retries == 1 else 'retries'}"
        title = f"{tries} on {entity}{gave} ({_at(r.first, ref)} to {_at(r.last, ref)})"
        sev = Severity.WARNING if r.gave_up else Severity.INFO
        findings.append(
            finding_on(
                ev, "retries", sev, title, f'Latest: "{_clip(r.example)}".', **r.model_dump(mode="json")
            )
        )
    findings += [_precursor(ev, p, ref) for p in sg.precursors(records)[:2]]
    keep_rows(ev, [{"kind": f.kind, "title": f.title} for f in findings], MAX_ROWS)
    ev.summary = (
        f"{_plural(len(in_window), 'log line')} of {entity} read for numbers, dependencies and changes: "
        f"{_plural(len(findings), 'signal')}"
    )
    return ToolResult(evidence=[ev], findings=findings)


SIGNAL_TOOLS: list[ViewTool] = [log_search, log_signals]
