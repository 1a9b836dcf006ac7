"""Deterministic analyzers over SQL instance rows: blocking, open transactions, sessions, queries, file space.

Wait classification lives in tools.sql.waits and is re-exported here."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from tools.redact import redact_sql
from tools.sql.waits import (
    CAUSE_WORDS,
    CauseShare,
    WaitProfile,
    WaitShare,
    classify_wait,
    wait_label,
    wait_profile,
)
from tools.world import FileRow, QueryStatRow, SessionRow

__all__ = [
    "CAUSE_WORDS",
    "CauseShare",
    "WaitProfile",
    "WaitShare",
    "classify_wait",
    "wait_label",
    "wait_profile",
]


def redacted(text: str | None) -> str:
    """SQL text safe to show: literals replaced by `?`, personal data masked, whitespace collapsed."""
    return " ".join(redact_sql(text or "").split())


# --- sessions: blocking chains and open transactions -------------------------------------------


def is_idle_in_transaction(s: SessionRow) -> bool:
    """Postgres 'idle in transaction', or an mssql/mysql sleeping session holding an open transaction."""
    status = (s.status or "").strip().lower()
    if status.startswith("idle in transaction"):
        return True
    sleeping = status in {"sleeping", "sleep", "idle"} or (s.command or "").strip().lower() == "sleep"
    return sleeping and (s.open_transaction_count or 0) > 0


def session_state(s: SessionRow) -> str:
    """The session's status in words, e.g. 'sleeping with 1 open transaction' or 'idle in transaction'."""
    status = (s.status or s.command or "").strip().lower() or "unknown status"
    n = s.open_transaction_count or 0
    if status.startswith("idle in transaction") or n <= 0:
        return status
    return f"{status} with {n} open transaction{'s' if n != 1 else ''}"


class SessionBrief(BaseModel):
    """One session as a finding shows it: who, what state, what it waits on, its redacted SQL."""

    session_id: int
    state: str
    idle_in_transaction: bool = False
    open_transaction_count: int = 0
    login_name: str | None = None
    host_name: str | None = None
    program_name: str | None = None
    database_name: str | None = None
    wait_type: str | None = None
    wait_time_ms: float = 0.0
    wait_resource: str | None = None
    elapsed_ms: float = 0.0
    sql_text: str = ""
    login_time: str | None = None


class BlockedSession(SessionBrief):
    blocked_by: int
    level: int  # 1 = blocked directly by the head


def _brief(s: SessionRow) -> dict[str, Any]:
    return {
        **s.model_dump(
            include={"session_id", "login_name", "host_name", "program_name", "database_name", "login_time"}
        ),
        "state": session_state(s),
        "idle_in_transaction": is_idle_in_transaction(s),
        "open_transaction_count": s.open_transaction_count or 0,
        "wait_type": s.wait_type or None,
        "wait_time_ms": s.wait_time_ms or 0.0,
        "wait_resource": s.wait_resource or None,
        "elapsed_ms": s.elapsed_ms or 0.0,
        "sql_text": redacted(s.sql_text),
    }


class BlockingChain(BaseModel):
    head_session_id: int
    head: SessionBrief | None = None  # None when the head is only named by blocking_session_id
    blocked: list[BlockedSession] = Field(default_factory=list)  # breadth first, longest wait first
    blocked_session_ids: list[int] = Field(default_factory=list)
    depth: int = 0  # longest chain: 57 <- 88 <- 91 is depth 2
    max_wait_ms: float = 0.0
    total_wait_ms: float = 0.0
    deadlock: bool = False  # the blockers form a cycle: a deadlock in progress
    cycle_session_ids: list[int] = Field(default_factory=list)

    @property
    def head_idle_in_transaction(self) -> bool:
        return self.head is not None and self.head.idle_in_transaction


def _blocker(s: SessionRow) -> int | None:
    b = s.blocking_session_id
    return None if b in (None, 0) or b == s.session_id else b  # mssql parallel workers may "block" self


def blocking_chains(sessions: Sequence[SessionRow]) -> list[BlockingChain]:
    """Group blocked sessions under their head blockers, worst chain first.

    Each session has at most one blocker, so the graph is a forest of trees hanging from heads, or
    from cycles (deadlocks in progress). A blocker missing from the rows is itself the head.
    """
    by_id = {s.session_id: s for s in sessions}
    parent = {s.session_id: b for s in sessions if (b := _blocker(s)) is not None}
    children: dict[int, list[int]] = defaultdict(list)
    for sid, b in parent.items():
        children[b].append(sid)
    roots: list[tuple[int, list[int]]] = [(h, []) for h in children if h not in parent]
    settled: set[int] = set()
    for start in parent:  # walk up from every blocked session; a revisit within one walk is a cycle
        path: list[int] = []
        node: int | None = start
        while node is not None and node not in settled and node not in path:
            path.append(node)
            node = parent.get(node)
        if node is not None and node in path:
            cycle = sorted(path[path.index(node) :])
            roots.append((cycle[0], cycle))
        settled.update(path)
    chains = [_chain(root, members, by_id, children) for root, members in roots]
    return sorted(chains, key=lambda c: (-len(c.blocked), -c.max_wait_ms, c.head_session_id))


def _chain(
    head: int, cycle: list[int], by_id: dict[int, SessionRow], children: dict[int, list[int]]
) -> BlockingChain:
    blocked: list[BlockedSession] = []
    seen = {head}
    queue: deque[tuple[int, int]] = deque([(head, 0)])
    while queue:
        sid, level = queue.popleft()
        kids = sorted(children.get(sid, []), key=lambda k: (-(by_id[k].wait_time_ms or 0.0), k))
        for kid in (k for k in kids if k not in seen):
            seen.add(kid)
            blocked.append(BlockedSession(**_brief(by_id[kid]), blocked_by=sid, level=level + 1))
            queue.append((kid, level + 1))
    waits = [b.wait_time_ms for b in blocked]
    return BlockingChain(
        head_session_id=head,
        head=SessionBrief(**_brief(by_id[head])) if head in by_id else None,
        blocked=blocked,
        blocked_session_ids=[b.session_id for b in blocked],
        depth=max((b.level for b in blocked), default=0),
        max_wait_ms=max(waits, default=0.0),
        total_wait_ms=sum(waits),
        deadlock=bool(cycle),
        cycle_session_ids=cycle,
    )


def long_open_transactions(
    sessions: Sequence[SessionRow], min_elapsed_ms: float = 600_000
) -> list[SessionBrief]:
    """Sleeping / idle-in-transaction sessions that have held a transaction for at least `min_elapsed_ms`."""
    found = [
        SessionBrief(**_brief(s))
        for s in sessions
        if is_idle_in_transaction(s) and (s.elapsed_ms or 0.0) >= min_elapsed_ms
    ]
    return sorted(found, key=lambda t: (-t.elapsed_ms, t.session_id))


# --- sessions by status and by who holds the idle ones -----------------------------------------

_ACTIVE_STATUSES = frozenset(
    {"active", "running", "runnable", "suspended", "pending", "fastpath function call"}
)
_ACTIVE_COMMANDS = frozenset({"query", "execute", "prepare", "fetch", "long data", "field list"})
_BACKGROUND = frozenset({"background", "dormant", "preconnect", "daemon", "binlog dump", "binlog dump gtid"})
IDLE_STATUSES = ("idle", "sleeping", "idle in transaction")
MANY_IDLE = 50  # this many idle sessions, as a majority, is connection pressure...
MANY_IDLE_SHARE_PCT = 80.0  # ...and so is this share of idle sessions...
MIN_SESSIONS_FOR_SHARE = 20  # ...once there are at least this many sessions


def session_status(s: SessionRow) -> str:
    """One of: active, idle, sleeping, idle in transaction, background, other, unknown.

    Postgres 'idle' and SQL Server / MySQL 'sleeping' (Sleep) sessions are connected but doing nothing;
    with an open transaction either is 'idle in transaction'."""
    if is_idle_in_transaction(s):
        return "idle in transaction"
    status, command = (s.status or "").strip().lower(), (s.command or "").strip().lower()
    if status == "idle":
        return "idle"
    if status in {"sleeping", "sleep"} or command == "sleep":
        return "sleeping"
    if status in _BACKGROUND or command in _BACKGROUND:
        return "background"
    if status in _ACTIVE_STATUSES or command in _ACTIVE_COMMANDS or status.startswith("active"):
        return "active"
    return "other" if status or command else "unknown"


class SessionHolder(BaseModel):
    """One application (program_name, else login, else host) and the idle sessions it holds."""

    name: str
    sessions: int
    logins: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)


class SessionSummary(BaseModel):
    total: int = 0
    by_status: dict[str, int] = Field(default_factory=dict)  # most sessions first
    idle: int = 0  # idle + sleeping + idle in transaction: connected, holding a slot, doing no work
    idle_share_pct: float = 0.0
    idle_holders: list[SessionHolder] = Field(default_factory=list)  # most idle sessions first
    connection_pressure: bool = False


def session_summary(sessions: Sequence[SessionRow]) -> SessionSummary:
    """Count sessions by status and group the idle ones by who holds them.

    Connection pressure: idle sessions are numerous and the large majority - at least MANY_IDLE and more
    than half of all sessions, or at least MANY_IDLE_SHARE_PCT of at least MIN_SESSIONS_FOR_SHARE."""
    counts: dict[str, int] = defaultdict(int)
    holders: dict[str, SessionHolder] = {}
    for s in sessions:
        status = session_status(s)
        counts[status] += 1
        if status not in IDLE_STATUSES:
            continue
        name = s.program_name or s.login_name or s.host_name or "unknown"
        h = holders.setdefault(name, SessionHolder(name=name, sessions=0))
        h.sessions += 1
        if s.login_name and s.login_name not in h.logins:
            h.logins.append(s.login_name)
        if s.host_name and s.host_name not in h.hosts:
            h.hosts.append(s.host_name)
    total = len(sessions)
    idle = sum(counts.get(k, 0) for k in IDLE_STATUSES)
    share = round(100.0 * idle / total, 2) if total else 0.0
    pressure = (idle >= MANY_IDLE and share > 50.0) or (
        total >= MIN_SESSIONS_FOR_SHARE and share >= MANY_IDLE_SHARE_PCT
    )
    for h in holders.values():
        h.logins.sort()
        h.hosts.sort()
    return SessionSummary(
        total=total,
        by_status=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        idle=idle,
        idle_share_pct=share,
        idle_holders=sorted(holders.values(), key=lambda h: (-h.sessions, h.name)),
        connection_pressure=pressure,
    )


# --- top queries ------------------------------------------------------------------------------


def _avg_ms(q: QueryStatRow) -> float | None:
    if q.avg_elapsed_ms is not None:
        return q.avg_elapsed_ms
    if q.total_elapsed_ms is not None and q.execution_count:
        return q.total_elapsed_ms / q.execution_count
    return None


def _total_ms(q: QueryStatRow) -> float:
    if q.total_elapsed_ms is not None:
        return q.total_elapsed_ms
    avg = _avg_ms(q)
    return avg * q.execution_count if avg is not None and q.execution_count else 0.0


class QueryRegression(QueryStatRow):
    """A statement now slower than its own baseline (sql_text redacted; avg derived when missing)."""

    ratio: float
    extra_elapsed_ms: float | None = None  # (avg - baseline) * executions: time lost to the regression


def _redacted_row(q: QueryStatRow) -> dict[str, Any]:
    return {**q.model_dump(), "sql_text": redacted(q.sql_text), "avg_elapsed_ms": _avg_ms(q)}


def regressed_queries(
    top_queries: Sequence[QueryStatRow], min_ratio: float = 2.0, min_avg_ms: float = 5.0
) -> list[QueryRegression]:
    """Statements now at least `min_ratio` times slower than their baseline and at least `min_avg_ms` slow."""
    found = []
    for q in top_queries:
        avg, base, runs = _avg_ms(q), q.baseline_avg_elapsed_ms, q.execution_count
        if avg is None or not base or base <= 0 or avg < min_avg_ms or avg / base < min_ratio:
            continue
        extra = (avg - base) * runs if runs else None
        found.append(QueryRegression(**_redacted_row(q), ratio=avg / base, extra_elapsed_ms=extra))
    return sorted(found, key=lambda r: (-(r.extra_elapsed_ms or 0.0), -r.ratio, r.query_hash))


class HeavyStatement(QueryStatRow):
    """One of the statements with the most total elapsed time (sql_text redacted)."""

    share_pct: float  # of the total elapsed time of all rows
    lead: str  # the first words of the statement, e.g. "UPDATE orders SET status"


def _lead(text: str, words: int = 4) -> str:
    """The first words of a statement, cut before a column list: 'INSERT INTO audit_log'."""
    return " ".join(text.split()[:words]).split(" (")[0].rstrip(",;( ")


def top_by_elapsed(top_queries: Sequence[QueryStatRow], n: int = 3) -> list[HeavyStatement]:
    """The `n` statements with the most total elapsed time, with their share of all statements' time."""
    total = sum(_total_ms(q) for q in top_queries)
    ranked = sorted((q for q in top_queries if _total_ms(q) > 0), key=lambda q: (-_total_ms(q), q.query_hash))
    return [
        HeavyStatement(
            **{**_redacted_row(q), "total_elapsed_ms": _total_ms(q)},
            share_pct=round(100.0 * _total_ms(q) / total, 2),
            lead=_lead(redacted(q.sql_text)) or f"query {q.query_hash}",
        )
        for q in ranked[:n]
    ]


# --- files ------------------------------------------------------------------------------------

NEARLY_FULL_PCT = 90.0


class FileSpace(FileRow):
    """A file with how full it is, how far it can still grow, and what is wrong with it."""

    pct_used: float | None = None  # of the file's current size
    growth_room_mb: float | None = None  # how far it can still grow: min(max - size, volume free)
    pct_of_capacity: float | None = None  # used / (size + growth room)
    at_max_size: bool = False
    limited_by: str | None = None  # "max_size" or "volume": what caps growth
    flags: list[str] = Field(default_factory=list)


def file_space(files: Sequence[FileRow]) -> list[FileSpace]:
    """Per file: percent used, room to grow, and flags.

    Flags: tempdb_nearly_full (any tempdb file), log_nearly_full (a log), near_max_size or volume_low
    (a data file, by what caps it) - each when used >= 90% of size plus growth room.
    """
    out = []
    for f in files:
        rooms: list[tuple[float, str]] = []
        if f.max_size_mb is not None:
            rooms.append((max(0.0, f.max_size_mb - f.size_mb), "max_size"))
        if f.volume_free_mb is not None:
            rooms.append((max(0.0, f.volume_free_mb), "volume"))
        room, limit = min(rooms) if rooms else (None, None)
        capacity = f.size_mb + (room or 0.0)
        used = f.used_mb
        pct_used = round(100.0 * used / f.size_mb, 2) if used is not None and f.size_mb > 0 else None
        pct_cap = round(100.0 * used / capacity, 2) if used is not None and capacity > 0 else None
        flags = []
        if pct_cap is not None and pct_cap >= NEARLY_FULL_PCT:
            if f.database_name.lower() == "tempdb":
                flags.append("tempdb_nearly_full")
            elif f.type == "log":
                flags.append("log_nearly_full")
            else:
                flags.append("volume_low" if limit == "volume" else "near_max_size")
        at_max = f.max_size_mb is not None and f.size_mb >= f.max_size_mb
        out.append(
            FileSpace(
                **f.model_dump(),
                pct_used=pct_used,
                growth_room_mb=room,
                pct_of_capacity=pct_cap,
                at_max_size=at_max,
                limited_by=limit,
                flags=flags,
            )
        )
    return out
