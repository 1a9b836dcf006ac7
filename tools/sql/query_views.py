"""The top queries view tool: regressed queries and plan changes against their own baseline, and
statements slow in absolute terms where no baseline exists."""

from __future__ import annotations

from datetime import datetime

from tools.base import (
    Evidence,
    Finding,
    Severity,
    ToolResult,
    view_tool,
)
from tools.common import finding_on
from tools.sources import ToolContext
from tools.sql import analysis as an
from tools.sql.common import (
    _analyze,
    _read,
    thresholds,
)
from tools.sql.wording import _dur, _ms, _num, _pct, _plural
from tools.world import QueryStatRow

MATERIAL_EXTRA_MS = 60_000  # a regression costing less than a minute of total time is not critical


# --- top queries --------------------------------------------------------------------------------


def _ratio(r: float) -> str:
    return f"{r:.0f}x" if r >= 10 else f"{_num(r)}x"


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if t else "an unknown time"


def _regression_finding(ev: Evidence, r: an.QueryRegression) -> Finding:
    runs = f" over {r.execution_count:.0f} executions" if r.execution_count else ""
    extra = f" (about {_dur(r.extra_elapsed_ms)} of extra time)" if r.extra_elapsed_ms else ""
    plan = (
        f"plan {r.plan_id} replaced plan {r.baseline_plan_id} at {_when(r.plan_changed_at)}; "
        if r.plan_changed
        else ""
    )
    detail = (
        f"query_hash {r.query_hash}: {plan}avg {_ms(r.avg_elapsed_ms)} now vs "
        f"{_ms(r.baseline_avg_elapsed_ms)} baseline{runs}{extra}; {r.sql_text or '(no text)'}"
    )
    material = (r.extra_elapsed_ms or r.total_elapsed_ms or 0.0) >= MATERIAL_EXTRA_MS
    severity = Severity.CRITICAL if r.ratio >= 10 and material else Severity.WARNING
    if r.plan_changed:
        title = (
            f"Plan change on {ev.entity}: plan {r.plan_id} replaced plan {r.baseline_plan_id} at "
            f"{_when(r.plan_changed_at)}; {_ratio(r.ratio)} slower than baseline"
        )
    else:
        title = f"Regressed query on {ev.entity}: {_ratio(r.ratio)} slower than baseline"
    return finding_on(ev, "regressed_query", severity, title, detail, **r.model_dump(mode="json"))


MAX_SLOW_LISTED = 3  # slow statements without a baseline reported one by one; the rest in one finding


def _slow_finding(ev: Evidence, q: an.SlowStatement, critical_ms: float) -> Finding:
    runs = f" over {q.execution_count:.0f} executions" if q.execution_count else ""
    why = q.baseline_source or "no baseline recorded"
    title = f"Slow statement on {ev.entity}: averages {_ms(q.avg_elapsed_ms)} with no baseline to compare"
    detail = (
        f"query_hash {q.query_hash}: avg {_ms(q.avg_elapsed_ms)}{runs}, at or above the absolute threshold "
        f"of {_ms(q.threshold_ms)} (sql_thresholds.slow_statement_ms) for statements without a baseline "
        f"({why}); {q.sql_text or '(no text)'}"
    )
    cumulative = bool(q.baseline_source and "no history" in q.baseline_source)
    if cumulative:
        detail += ". The figures are cumulative since the statistics were last reset: this may be past"
    # cumulative averages may describe last week: never critical, so a live problem (a blocking chain
    # now) leads the answer rather than an old average
    very_slow = (q.avg_elapsed_ms or 0.0) >= critical_ms and not cumulative
    severity = Severity.CRITICAL if very_slow else Severity.WARNING
    return finding_on(ev, "slow_query", severity, title, detail, **q.model_dump(mode="json"))


def _baseline_note(queries: list[QueryStatRow]) -> str:
    """Which baselines were read and why some statements have none (per database where known)."""
    missing = [q for q in queries if not q.baseline_avg_elapsed_ms]
    if not missing:
        return ""
    reasons: dict[str, int] = {}
    for q in missing:
        reasons[q.baseline_source or "no history is kept for these statements"] = (
            reasons.get(q.baseline_source or "no history is kept for these statements", 0) + 1
        )
    return " ".join(
        f"{_plural(n, 'statement')} without a baseline: {why}." for why, n in sorted(reasons.items())
    )


@view_tool("database", detects=("regressions",))
def top_queries(ctx: ToolContext, entity: str) -> ToolResult:
    """Reads the top statements of one database instance (SQL Server plan cache with Query Store per plan,
    PostgreSQL pg_stat_statements, MySQL statement digests; each ranked first, text fetched only for the
    top 50) and finds regressed queries: statements whose plan in use now averages at least 2x their own
    baseline of the previous week, with the ratio, executions, time lost and the (redacted) SQL text. A
    plan change is itself a finding ("plan 7 replaced plan 3 at 09:12; 14x slower"). Statements with no
    baseline are judged by absolute thresholds: an average of 2 s or more is slow (warning), 30 s critical
    (sql_thresholds.slow_statement_ms, very_slow_statement_ms) - but never critical on cumulative figures
    with no history (pg_stat_statements, digests), which may be past; the finding says why there is no
    baseline (Query Store off or not read in that database, no history kept). Also names the heaviest
    statements by total elapsed time."""
    ev, rows = _read(ctx, "top_queries", entity, "top queries", lambda src: src.top_queries(entity))
    if rows is None:
        return ToolResult(evidence=[ev])
    queries = rows
    limits = thresholds(ctx)

    def build() -> list[Finding]:
        regressions = an.regressed_queries(queries)
        slow = an.slow_without_baseline(queries, limits.slow_statement_ms)
        changes = [
            p for p in an.plan_changes(queries) if p.query_hash not in {r.query_hash for r in regressions}
        ]
        heavy = an.top_by_elapsed(queries, n=3)
        note = _baseline_note(queries)
        ev.summary = (
            f"{_plural(len(queries), 'top statement')} on {entity}: {len(regressions)} regressed, "
            f"{len(slow)} slow without a baseline" + (f". {note}" if note else "")
        )
        findings = [_regression_finding(ev, r) for r in regressions]
        findings += [_slow_finding(ev, q, limits.very_slow_statement_ms) for q in slow[:MAX_SLOW_LISTED]]
        if len(slow) > MAX_SLOW_LISTED:  # one line for the rest: a long list buries the answer
            rest = slow[MAX_SLOW_LISTED:]
            title = (
                f"{_plural(len(rest), 'more statement')} on {entity} average {_ms(limits.slow_statement_ms)} "
                "or more with no baseline to compare"
            )
            detail = "; ".join(
                f"{q.query_hash}: avg {_ms(q.avg_elapsed_ms)}, {(q.sql_text or '(no text)')[:80]}"
                for q in rest[:10]
            )
            data = {"statements": [q.model_dump(mode="json") for q in rest]}
            findings.append(finding_on(ev, "slow_queries_more", Severity.WARNING, title, detail, **data))
        for p in changes:
            how = f"; {_ratio(p.ratio)} the baseline's average" if p.ratio else ""
            title = (
                f"Plan change on {entity}: plan {p.plan_id} replaced plan {p.baseline_plan_id} at "
                f"{_when(p.plan_changed_at)}{how}"
            )
            detail = f"query_hash {p.query_hash}: {p.sql_text or '(no text)'}"
            findings.append(
                finding_on(ev, "plan_change", Severity.INFO, title, detail, **p.model_dump(mode="json"))
            )
        with_baseline = [q for q in queries if q.baseline_avg_elapsed_ms]
        if with_baseline and not regressions:
            title = f"No regressed queries on {entity}"
            detail = f"{_plural(len(with_baseline), 'statement')} with a baseline, none at 2x or more of it."
            if note:
                detail += f" {note}"
            findings.append(finding_on(ev, "no_regressed_queries", Severity.INFO, title, detail))
        if heavy:
            title = f"Top statements by total elapsed time on {entity}: " + ", ".join(
                f"{h.lead} ({_pct(h.share_pct)})" for h in heavy
            )
            detail = "; ".join(
                f"{h.sql_text or h.lead} - {_dur(h.total_elapsed_ms)} total"
                + (f", {h.execution_count:.0f} executions" if h.execution_count else "")
                + (f", avg {_ms(h.avg_elapsed_ms)}" if h.avg_elapsed_ms is not None else "")
                for h in heavy
            )
            data = {"statements": [h.model_dump(mode="json") for h in heavy]}
            findings.append(finding_on(ev, "top_statements", Severity.INFO, title, detail, **data))
        return findings

    return _analyze(ev, build)
