"""The logs specialist's view tools: search one entity's logs, keep them as evidence, find what matters."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from tools.base import Evidence, Finding, Severity, ToolResult, ViewTool, evidence_id, view_tool
from tools.common import configured, finding_on, keep_rows, read_evidence
from tools.logs import analysis as an
from tools.metrics.analysis import higher_is_worse
from tools.metrics.reading import entity_series
from tools.metrics.signals import Resumption, resumed_after
from tools.metrics.wording import fmt_value
from tools.redact import redact_sql, redact_text
from tools.sources import ToolContext
from tools.world import LogRecord, Series

log = logging.getLogger(__name__)

MAX_ROWS = 50
MAX_SIGNATURE_FINDINGS = 6
MAX_RECORDS = 2000
CRITICAL_CATEGORIES = {"log_full", "io_error", "disk_full", "out_of_memory", "scheduler"}


def _hm(ts: datetime) -> str:
    return f"{ts:%H:%M} UTC"


def _span(first: datetime, last: datetime, ref: datetime | None = None) -> str:
    """ "between 13:41 and 13:52 UTC"; dated when the span crosses midnight or is not on `ref`'s day."""
    dated = first.date() != last.date() or (ref is not None and first.date() != ref.date())
    a = f"{first:%Y-%m-%d %H:%M}" if dated else f"{first:%H:%M}"
    if first == last:
        return f"at {a} UTC"
    b = f"{last:%Y-%m-%d %H:%M}" if first.date() != last.date() else f"{last:%H:%M}"
    return f"between {a} and {b} UTC"


def _clip(text: str, limit: int = 200) -> str:
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _search(ctx: ToolContext, tool: str, entity: str) -> tuple[Evidence, list[LogRecord] | None]:
    """Read the entity's log messages (info and up) in the incident window; failures become evidence."""
    ev, records = read_evidence(
        "logs",
        tool,
        entity,
        lambda: configured(ctx.sources.logs, "log").search(
            entities=[entity], start=ctx.start, end=ctx.end, min_severity="info", limit=MAX_RECORDS
        ),
        log=log,
        doing=f"search for {entity}",
        failed=f"Could not search logs for {entity}",
    )
    if records is None:
        return ev, None
    return ev, sorted(records, key=lambda r: r.timestamp)


# --- error_signatures ---------------------------------------------------------------------------


def _signature_severity(sig: an.ErrorSignature) -> Severity:
    if sig.severity == "critical" or any(c.category in CRITICAL_CATEGORIES for c in sig.codes):
        return Severity.CRITICAL
    if sig.severity == "error" or sig.codes:
        return Severity.WARNING
    return Severity.INFO


MAX_NAMED_PROCESSES = 5
MAX_SHOWN_STATEMENTS = 3


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_NAMED_PROCESSES])
    return shown + (f" and {len(ids) - MAX_NAMED_PROCESSES} more" if len(ids) > MAX_NAMED_PROCESSES else "")


def _sql(text: str, limit: int = 160) -> str:
    return _clip(redact_sql(text), limit)


def _deadlock_finding(ev: Evidence, d: an.DeadlockDetails) -> Finding:
    assert d.first_seen is not None and d.last_seen is not None
    codes = f" ({', '.join(d.codes)})" if d.codes else ""
    involving = f" involving {', '.join(d.objects[:3])}" if d.objects else ""
    title = (
        f"{_plural(d.deadlocks, 'deadlock')} on {ev.entity}{codes}{involving} "
        f"{_span(d.first_seen, d.last_seen)}"
    )
    parts = []
    if d.victims or d.victim_procedures:
        who = f"process {_ids(d.victims)}" if d.victims else "the victims"
        ran = f" running {', '.join(d.victim_procedures)}" if d.victim_procedures else ""
        parts.append(f"Victims: {who}{ran} (rolled back)")
    if d.objects or d.indexes or d.resources:
        what = ", ".join(d.resources) or "lock"
        on = f" on {', '.join(d.objects)}" if d.objects else ""
        idx = f", index {', '.join(d.indexes)}" if d.indexes else ""
        mode = f" (mode {', '.join(d.modes)})" if d.modes else ""
        parts.append(f"resource: {what}{on}{idx}{mode}")
    if d.owners or d.owner_procedures:
        who = f"process {_ids(d.owners)}" if d.owners else "another session"
        ran = f" running {', '.join(d.owner_procedures)}" if d.owner_procedures else ""
        parts.append(f"held by {who}{ran}")
    if d.statements:
        shown = "; ".join(_sql(q) for q in d.statements[:MAX_SHOWN_STATEMENTS])
        more = len(d.statements) - MAX_SHOWN_STATEMENTS
        parts.append(
            ("statement involved: " if len(d.statements) == 1 else "statements involved: ")
            + shown
            + (f"; and {more} more" if more > 0 else "")
        )
    if not parts and d.latest_message:
        parts.append(
            f'The deadlock messages name no sessions or objects; latest: "{_clip(d.latest_message)}"'
        )
    elif not parts:
        parts.append("No deadlock graph was logged, so the resources are unknown")
    if d.retries:
        parts.append(f"{_plural(d.retries, 'client retry message')} followed")
    detail = "; ".join(parts) + "."
    severity = Severity.CRITICAL if d.deadlocks >= 2 else Severity.WARNING
    return finding_on(ev, "deadlock", severity, title, detail, **d.model_dump(mode="json"))


def _signature_finding(ev: Evidence, sig: an.ErrorSignature, ref: datetime | None = None) -> Finding:
    span = _span(sig.first_seen, sig.last_seen, ref)
    times = "once" if sig.count == 1 else f"{sig.count} times"
    if sig.error_header and sig.codes:
        # SQL Server's "Error: N, Severity: S, State: T." line and its message, told as one event
        code = sig.codes[0]
        meaning = code.meaning[:1].upper() + code.meaning[1:]
        title = f"{meaning} on {ev.entity} ({code.label}): {_clip(sig.example, 160)}"
    elif sig.codes:
        code = sig.codes[0]
        title = f"{code.label} ({code.meaning}) on {ev.entity}: {times} {span}"
    elif sig.error_number:
        title = (
            f"{sig.severity} on {ev.entity} (SQL Server error {sig.error_number}), {times} {span}: "
            f'"{_clip(sig.example, 160)}"'
        )
    else:
        title = f'{sig.severity} on {ev.entity}, {times} {span}: "{_clip(sig.example, 160)}"'
    if sig.error_header:
        detail = (
            f'{times[:1].upper()}{times[1:]} {span}, each logged with "{_clip(sig.error_header)}". '
            f'Latest message: "{_clip(sig.example)}".'
        )
    else:
        detail = f'Latest message: "{_clip(sig.example)}".' if sig.codes else ""
    if sig.count > 1:
        detail = f"{detail} Template: {_clip(sig.template)}.".strip()
    return finding_on(
        ev,
        "error_signature",
        _signature_severity(sig),
        title,
        detail,
        template=sig.template,
        count=sig.count,
        codes=[c.label for c in sig.codes],
        category=sig.category,
        error_number=sig.error_number,
        first_seen=sig.first_seen.isoformat(),
        last_seen=sig.last_seen.isoformat(),
        example=sig.example,
    )


def _events_text(infos: list[an.ErrorSignature], limit: int = 4) -> str:
    latest = sorted(infos, key=lambda s: s.last_seen)[-limit:]
    return "; ".join(f'{s.last_seen:%H:%M} "{_clip(s.example, 140)}"' for s in latest)


@view_tool("logs", detects=("errors", "deadlocks"))
def error_signatures(ctx: ToolContext, entity: str) -> ToolResult:
    """Group the log messages of one entity (instance or host) in the incident window by signature.

    Messages are grouped by template (numbers, hex, GUIDs, IPs and quoted strings masked), with
    count, first/last seen, worst severity and recognised error codes: SQL Server 1205, 9002,
    18456, 823/824/825, 701, 17883; PostgreSQL 40P01, 53300, 57014, 53100; MySQL 1213, 1205, 1040.
    SQL Server's "Error: N, Severity: S, State: T." line is folded into the message logged with it.
    Findings: one `deadlock` finding with victims, procedures, statements, tables / relations,
    indexes and the owner when deadlocks appear (SQL Server victim messages and deadlock graphs,
    PostgreSQL "deadlock detected" with DETAIL / CONTEXT / STATEMENT, MySQL "Deadlock found" and
    InnoDB LATEST DETECTED DEADLOCK reports); one `error_signature` finding per warning-or-worse signature;
    a `failover_timeline` per failover told by the events (reason -> initiated -> in progress -> completed
    -> available, with times), and when it completed, `failover_recovered` / `failover_not_recovered` from
    the entity's metrics against their level before it; a `log_events` or `no_log_errors` info finding
    listing the latest informational events.
    """
    ev, records = _search(ctx, "error_signatures", entity)
    if records is None:
        return ToolResult(evidence=[ev])
    sigs = an.error_signatures(records)
    keep_rows(
        ev,
        [
            {
                "template": redact_text(s.template),
                "count": s.count,
                "severity": s.severity,
                "first_seen": s.first_seen.isoformat(),
                "last_seen": s.last_seen.isoformat(),
                "codes": [c.label for c in s.codes],
                "category": s.category,
                "example": _clip(s.example, 500),
            }
            for s in sigs
        ],
        MAX_ROWS,
    )
    problems = [s for s in sigs if an.LEVEL_RANK[s.severity] >= an.LEVEL_RANK["warning"] or s.codes]
    infos = [s for s in sigs if s not in problems]
    errors = sum(s.count for s in sigs if an.LEVEL_RANK[s.severity] >= an.LEVEL_RANK["error"])
    ev.summary = (
        f"{_plural(len(records), 'log message')} for {entity} in {_plural(len(sigs), 'signature')}"
        f" ({errors} at error or worse), {_span(ctx.start, ctx.end, ctx.end)}"
    )
    findings: list[Finding] = []
    deadlocks = an.deadlock_details(records)
    if deadlocks.deadlocks:
        findings.append(_deadlock_finding(ev, deadlocks))
        problems = [s for s in problems if s.category != "deadlock"]
    extra: list[Evidence] = []
    for t in an.failover_timelines(records):
        findings.append(_timeline_finding(ev, t, ctx.now))
        if (recovery := _recovery(ctx, entity, t)) is not None:
            extra.append(recovery[0])
            findings.append(recovery[1])
    shown = problems[:MAX_SIGNATURE_FINDINGS]
    coded = [_signature_finding(ev, s, ctx.end) for s in shown]
    titles = [f.title for f in coded]
    for f, sig in zip(coded, shown, strict=True):
        if titles.count(f.title) > 1:  # same code, count and span: the synthesizer would keep only one
            f.title += f': "{_clip(sig.example, 120)}"'
    findings += coded
    if findings and infos:
        title = f"Other events on {entity}: {_plural(sum(s.count for s in infos), 'informational message')}"
        findings.append(finding_on(ev, "log_events", Severity.INFO, title, f"Latest: {_events_text(infos)}."))
    elif not findings:
        title = f"No errors in logs for {entity} {_span(ctx.start, ctx.end, ctx.end)}: nothing abnormal"
        detail = (
            f"{_plural(len(records), 'informational message')}; latest: {_events_text(infos)}."
            if infos
            else "No log messages at all in the window."
        )
        findings.append(finding_on(ev, "no_log_errors", Severity.INFO, title, detail, messages=len(records)))
    return ToolResult(evidence=[ev, *extra], findings=findings)


# --- failover timelines -------------------------------------------------------------------------

RECENT = timedelta(hours=1)  # a failover that ended within this of now may explain what is seen now


def _secs(d: timedelta) -> str:
    s = d.total_seconds()
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _timeline_finding(ev: Evidence, t: an.FailoverTimeline, now: datetime) -> Finding:
    what = "Multi-AZ failover" if t.multi_az else "Failover"
    chain = " → ".join(([t.reason] if t.reason else []) + t.stages)
    when = f"at {t.start:%H:%M:%S} UTC" if t.start == t.end else f"{t.start:%H:%M:%S}–{t.end:%H:%M:%S} UTC"
    took = f" ({_secs(t.end - t.start)})" if t.end > t.start else ""
    title = f"{what} on {ev.entity} {when}{took}: {chain}"
    steps = "; ".join(f'{s.at:%H:%M:%S} {s.stage}: "{_clip(s.message, 120)}"' for s in t.steps)
    detail = f"In order: {steps}."
    if not t.completed:
        detail += " No completion message yet: the failover may still be in progress."
    elif not t.available:
        detail += " No message says the instance is available again."
    ago = now - t.end
    if ago > RECENT:
        detail += f" It ended {_secs(ago)} before now."
    detail += (
        f" Primary evidence source: these {_plural(t.events, 'event message')}; metrics only show a "
        "failover's side effects (connections dropping, a gap in throughput)."
    )
    severity = Severity.WARNING if not t.completed or ago <= RECENT else Severity.INFO
    return finding_on(ev, "failover_timeline", severity, title, detail, **t.model_dump(mode="json"))


def _moved(s: Series, r: Resumption, start: datetime) -> str | None:
    """'DatabaseConnections 312 → 0 → 311' when the series left its level during the failover."""
    during = [v for t, v in s.points if start <= t and (r.since is None or t < r.since)]
    if not during:
        return None
    extreme = max(during, key=lambda v: abs(v - r.before))
    if abs(extreme - r.before) < 0.5 * abs(r.before):
        return None
    return f"{s.field} " + " → ".join(fmt_value(v, s.unit) for v in (r.before, extreme, r.after))


def _recovery(ctx: ToolContext, entity: str, t: an.FailoverTimeline) -> tuple[Evidence, Finding] | None:
    """Compare the entity's metrics after the failover with their level before it."""
    if ctx.sources.metrics is None or not t.completed:
        return None
    try:
        series = entity_series(ctx.sources.metrics, ctx, entity)
    except Exception as exc:  # the timeline stands without the comparison
        log.warning("logs failover recovery: metrics of %s unreadable: %s", entity, exc)
        return None
    end = next((s.at for s in t.steps if s.stage == "instance available"), t.end)
    checks = [(s, r) for s in series if (r := resumed_after(s, t.start, end, higher_is_worse(s))) is not None]
    if not checks:
        return None
    ev = Evidence(id=evidence_id("failover_recovery", entity), specialist="logs", tool="failover_recovery",
                  entity=entity, summary="")  # fmt: skip
    keep_rows(ev, [{"series": s.label, **r.model_dump(mode="json")} for s, r in checks], MAX_ROWS)
    back = [(s, r) for s, r in checks if r.resumed]
    n_series = f"{len(checks)} metric series"
    ev.summary = f"{len(back)} of {n_series} on {entity} back at the pre-failover level"
    moved = [(m, r) for s, r in checks if (m := _moved(s, r, t.start))]
    hit = [m for m, _ in moved]
    shown = f" The failover's footprint (before → during → after): {'; '.join(hit[:5])}." if hit else ""
    before = f"the median before {t.start:%H:%M:%S} UTC"
    if len(back) == len(checks):
        by = max(r.since for _, r in (moved or back) if r.since is not None)
        which = f"the {len(moved)} it hit were" if moved else "all were"
        title = (
            f"Workload on {entity} resumed normally after the failover: all {n_series} are back at their "
            f"pre-failover level ({which} back by {by:%H:%M} UTC)"
        )
        detail = f"Each series is back within 20% (or 3.5 robust deviations) of {before}, or better.{shown}"
        return ev, finding_on(ev, "failover_recovered", Severity.INFO, title, detail.strip())
    names = ", ".join(s.field for s, r in checks if not r.resumed)
    title = (
        f"After the failover on {entity}, {len(checks) - len(back)} of {n_series} "
        f"are not back at their pre-failover level: {names}"
    )
    detail = f"Back means within 20% (or 3.5 robust deviations) of {before}.{shown}"
    return ev, finding_on(ev, "failover_not_recovered", Severity.WARNING, title, detail.strip())


# --- log_bursts ---------------------------------------------------------------------------------


@view_tool("logs", detects=("errors",))
def log_bursts(ctx: ToolContext, entity: str) -> ToolResult:
    """Find minutes in the incident window when one entity logged far more than usual.

    A burst is a 60-second bucket with at least 5 messages and at least 3 times the median
    bucket (empty buckets count as zero). Findings: one `log_burst` per burst (the 3 largest),
    or a `no_log_bursts` info finding with the peak rate when the volume was steady.
    """
    ev, records = _search(ctx, "log_bursts", entity)
    if records is None:
        return ToolResult(evidence=[ev])
    found = an.bursts(records, bucket_s=60)
    keep_rows(ev, [b.model_dump(mode="json") for b in found], MAX_ROWS)
    ev.summary = f"{_plural(len(found), 'burst')} in {_plural(len(records), 'log message')} for {entity}"
    if not found:
        per_minute: dict[int, int] = {}
        for r in records:
            slot = int(r.timestamp.timestamp() // 60)
            per_minute[slot] = per_minute.get(slot, 0) + 1
        peak = max(per_minute.values(), default=0)
        volume = _plural(len(records), "message")
        title = f"No bursts in log volume for {entity}: {volume}, peak {peak} per minute"
        return ToolResult(evidence=[ev], findings=[finding_on(ev, "no_log_bursts", Severity.INFO, title, "")])
    findings = []
    for b in sorted(found, key=lambda x: -x.count)[:3]:
        title = (
            f"Burst of {b.count} log messages on {entity} at {_hm(b.start)} "
            f"({b.errors} errors), {b.ratio:.0f}x the median minute ({b.median:g})"
        )
        severity = Severity.WARNING if b.errors else Severity.INFO
        findings.append(finding_on(ev, "log_burst", severity, title, "", **b.model_dump(mode="json")))
    return ToolResult(evidence=[ev], findings=findings)


LOGS_TOOLS: list[ViewTool] = [error_signatures, log_bursts]
