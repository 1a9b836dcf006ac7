"""`workload_attribution`: tie what moved in a database instance's metrics to its statements and waits.

CPU up -> the query that holds the CPU time; writes/WAL up or storage draining -> the statements that
write; both -> the same statement, or two different workloads (a read-only query writes no WAL, so it
cannot be what drives the write surge); connections climbing while sessions idle on Client:ClientRead
-> a connection pool leak pattern."""

from __future__ import annotations

import logging
import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime

from tools.base import Evidence, Finding, Severity, ToolResult, view_tool
from tools.common import finding_on, record_failure
from tools.metrics import analysis as an
from tools.metrics import signals as sg
from tools.metrics.reading import read_series
from tools.metrics.wording import _when, fmt_value
from tools.sources import ToolContext
from tools.sql.workload import StatementShare, Workload, share, workload
from tools.world import Series

log = logging.getLogger(__name__)

_CPU = re.compile(r"cpu", re.IGNORECASE)
_CONNECTIONS = re.compile(r"connection|numbackends|threads_connected|sessions", re.IGNORECASE)
_NOT_CONNECTIONS = re.compile(r"max|limit|fail|abort|refus|error|rate|attempt|timeout", re.IGNORECASE)
_MAX_CONNECTIONS = re.compile(r"max_?conn|connection_?limit|max_?sessions", re.IGNORECASE)


@dataclass
class Moves:
    """What moved on the instance, in words, and since when."""

    cpu: list[tuple[str, datetime]] = field(default_factory=list)
    writes: list[tuple[str, datetime]] = field(default_factory=list)
    connections: list[tuple[Series, sg.Trend]] = field(default_factory=list)
    limit: float | None = None  # max_connections, when a series says it


def _cpu_move(s: Series) -> tuple[str, datetime] | None:
    if not (an.is_utilisation(s) and _CPU.search(s.field)):
        return None
    step, high = an.step_change(s), an.sustained_high(s)
    if step is not None and step.after > step.before:
        ref = s.points[-1][0]
        text = f"{s.field} {fmt_value(step.before, s.unit)} → {fmt_value(step.after, s.unit)}"
        return f"{text} at {_when(step.at, ref)}", step.at
    if high is not None:
        return f"{s.field} at {fmt_value(high.latest, s.unit)}", high.since
    return None


def _write_move(s: Series) -> tuple[str, datetime] | None:
    if sg.io_side(s) in ("write", "wal"):
        step = an.step_change(s)
        if step is not None and step.ratio is not None and step.ratio >= 2:
            return f"{s.field} {step.ratio:.1f}x", step.at
    limit = an.capacity_limit(s)
    if limit is not None and not limit[1] and an.heading_to_limit(s, an.HORIZON_DAYS):
        return f"{s.field} falling to {fmt_value(s.points[-1][1], s.unit)}", s.points[0][0]
    return None


def moves(series: list[Series]) -> Moves:
    m = Moves()
    for s in series:
        if len(s.points) < 4:
            continue
        if (cpu := _cpu_move(s)) is not None:
            m.cpu.append(cpu)
        if (write := _write_move(s)) is not None:
            m.writes.append(write)
        if _MAX_CONNECTIONS.search(s.field):
            m.limit = s.points[-1][1]
        elif (
            _CONNECTIONS.search(s.field)
            and not _NOT_CONNECTIONS.search(s.field)
            and (climb := sg.climbing(s)) is not None
        ):
            m.connections.append((s, climb))
    return m


def _load(series: list[Series], since: datetime) -> float | None:
    load = sg.load_series(series)
    points = [v for t, v in load.points if t >= since] if load is not None else []
    return statistics.fmean(points) if points else None


def _cpu_finding(ev: Evidence, m: Moves, top: StatementShare, w: Workload, series: list[Series]) -> Finding:
    what, since = m.cpu[0]
    load = _load(series, since)
    aas = ""
    if load:
        aas = f", ≈ {top.elapsed_share_pct / 100 * load:.1f} of {load:.1f} average active sessions (db load)"
    title = (
        f"CPU on {ev.entity} ({what}) is mostly one query: {top.lead} — {top.cpu_share_pct:.0f}% of CPU "
        f"time, {top.elapsed_share_pct:.0f}% of statement time{aas}"
    )
    runs = f", {top.execution_count:.0f} executions" if top.execution_count else ""
    detail = f"{top.sql_text or top.lead}{runs}. CPU is {w.cpu_wait_share_pct or 0:.0f}% of the wait time."
    if top.kind == "read":
        detail += (
            " A read-only query holding this much CPU usually reads far more rows than it returns "
            "(a missing index, a bad plan): its plan is the place to look."
        )
    return finding_on(ev, "cpu_attribution", Severity.WARNING, title, detail, statement=top.model_dump())


def _write_finding(ev: Evidence, m: Moves, writers: list[StatementShare]) -> Finding:
    surge = ", ".join(text for text, _ in m.writes)
    title = f"The writes behind {surge} on {ev.entity} come from: " + "; ".join(share(s) for s in writers[:3])
    detail = "; ".join(f"{s.sql_text or s.lead} ({s.kind})" for s in writers[:3]) + "."
    data = {"statements": [s.model_dump() for s in writers]}
    return finding_on(ev, "write_attribution", Severity.WARNING, title, detail, **data)


def _relation(ev: Evidence, m: Moves, cpu: StatementShare, writers: list[StatementShare]) -> Finding | None:
    surge = ", ".join(text for text, _ in m.writes)
    what = m.cpu[0][0]
    data = {"cpu_statement": cpu.model_dump(), "writers": [s.model_dump() for s in writers]}
    if any(s.query_hash == cpu.query_hash for s in writers):
        title = (
            f"The CPU rise ({what}) and the write surge ({surge}) on {ev.entity} come from the same "
            f"statement: {cpu.lead} ({cpu.cpu_share_pct:.0f}% of CPU time, {cpu.elapsed_share_pct:.0f}% of "
            "statement time)"
        )
        detail = (
            f"{cpu.sql_text or cpu.lead}. One workload explains both: slowing it relieves CPU and WAL alike."
        )
        return finding_on(ev, "same_workload", Severity.WARNING, title, detail, **data)
    if cpu.kind != "read":
        return None
    writes = "; ".join(share(s) for s in writers[:3])
    title = (
        f"CPU and writes on {ev.entity} come from two different workloads: the CPU ({what}) from the "
        f"read-only query {cpu.lead} ({cpu.cpu_share_pct:.0f}% of CPU time), "
        f"the writes ({surge}) from {writes}"
    )
    detail = (
        "A read-only statement writes no WAL and adds no data, so the CPU rise cannot be what drives the "
        "write surge: the writes and what they drive (WAL volume, replica lag, storage growth) are causally "
        "independent of it, and easing the CPU will not shrink them."
    )
    return finding_on(ev, "independent_workloads", Severity.WARNING, title, detail, **data)


def _connection_finding(ev: Evidence, m: Moves, w: Workload) -> Finding | None:
    if w.profile is None or not m.connections:
        return None
    client = [x for x in w.profile.waits if x.cause == "client" and x.wait_type.lower().startswith("client:")]
    client_share = sum(x.share_pct for x in client)
    if client_share < 50.0:
        return None
    s, climb = m.connections[0]
    ref = s.points[-1][0]
    rose = f"{s.field} rose from {fmt_value(climb.first, s.unit)} to {fmt_value(climb.latest, s.unit)}"
    if m.limit:
        rose += f" of max_connections ({fmt_value(m.limit, None)}, {100 * climb.latest / m.limit:.0f}%)"
    waits = ", ".join(x.wait_type for x in client)
    title = (
        f"{rose} on {ev.entity} since {_when(climb.first_ts, ref)} while {client_share:.0f}% of database "
        f"wait time is idle client sessions ({waits}): sessions remain open waiting for the client — a "
        "connection pool leak pattern"
    )
    detail = (
        f"{waits} means a backend waits for its client to send the next command: the application holds "
        "the session (often idle in transaction) without using it. Connections that keep climbing while "
        "most sessions sit idle like this are what a connection pool leak looks like (connections checked "
        "out and never returned); unchecked, they run into max_connections. Check pg_stat_activity for idle "
        "and idle-in-transaction sessions by application and client address."
    )
    data = {"client_wait_share_pct": client_share, "first": climb.first, "latest": climb.latest}
    return finding_on(ev, "connection_pool_leak", Severity.WARNING, title, detail, **data)


@view_tool("metrics", detects=("resource_usage",))
def workload_attribution(ctx: ToolContext, entity: str) -> ToolResult:
    """For a database instance whose metrics moved, say which statements and waits are behind it.

    Reads the instance's series, top statements and wait events. CPU up (a step up or >= 90%) -> the
    query holding >= 50% of CPU time (`cpu_attribution`, with its share of statement time and of the
    db load in average active sessions when a load series exists). Write/WAL volume up 2x or free
    storage draining -> the statements that write (`write_attribution`). Both -> `same_workload` when
    one statement does both, `independent_workloads` when the CPU comes from a read-only query.
    Connections climbing while >= 50% of wait time is Client:ClientRead -> `connection_pool_leak`.
    Returns nothing for entities that are not database instances or when nothing moved; a failing
    metric source becomes evidence with the error, like the other metrics tools.
    """
    ev, series = read_series(ctx, "workload_attribution", entity, log)
    if series is None:
        return ToolResult(evidence=[ev])
    sql = ctx.sources.sql
    try:
        engines = sql.instances() if sql is not None else {}
    except Exception as exc:  # without the instance list there is nothing to relate
        log.warning("metrics workload_attribution: SQL instances unknown: %s", exc)
        engines = {}
    m = moves(series)
    if sql is None or entity not in engines or not (m.cpu or m.writes or m.connections):
        return ToolResult()  # not a database instance, or nothing moved: nothing to relate
    engine = engines[entity]
    try:
        w = workload(sql.top_queries(entity), sql.waits(entity), engine)
    except Exception as exc:  # a failing source is evidence, never a crash
        record_failure(ev, exc, f"Could not read statements or waits of {entity}")
        return ToolResult(evidence=[ev])
    ev.rows = [s.model_dump() for s in w.statements[:50]]
    ev.row_count = len(w.statements)
    findings: list[Finding] = []
    cpu = w.cpu_top() if m.cpu else None
    writers = w.writers() if m.writes else []
    relation = _relation(ev, m, cpu, writers) if cpu is not None and writers else None
    if relation is not None:
        findings.append(relation)
    elif cpu is not None:
        findings.append(_cpu_finding(ev, m, cpu, w, series))
    if writers and relation is None:
        findings.append(_write_finding(ev, m, writers))
    if (conn := _connection_finding(ev, m, w)) is not None:
        findings.append(conn)
    moved = [text for text, _ in m.cpu + m.writes] + [f"{s.field} climbing" for s, _ in m.connections]
    ev.summary = (
        f"What moved on {entity} ({'; '.join(moved)}) related to {len(w.statements)} top statements and "
        f"its wait events: {len(findings)} attribution{'s' if len(findings) != 1 else ''}"
    )
    return ToolResult(evidence=[ev], findings=findings)
