"""Findings about one instance's sessions: blocking chains, long-open transactions, idle sessions."""

from __future__ import annotations

from tools.base import ActionTarget, Evidence, Finding, ProposedAction, Severity
from tools.common import finding_on
from tools.sql import analysis as an
from tools.sql.wording import _hosts, _mins, _pct, _plural, _secs, _session, _who
from tools.world import Engine


def session_target(instance: str, session_id: int, s: an.SessionBrief | None) -> ActionTarget:
    """The structured kill target: the session id plus what the executor re-checks before acting."""
    attrs: dict[str, str] = {}
    if s is not None:
        for key in ("login_name", "host_name", "program_name", "login_time"):
            value = getattr(s, key)
            if value:
                attrs[key] = str(value)
    return ActionTarget(entity=instance, kind="session", id=str(session_id), attrs=attrs)


MAX_LISTED = 10  # blocked sessions named one by one in a finding
MAX_HOLDERS = 5  # applications named as holders of idle sessions
LONG_BLOCK_MS = 30_000  # default: a head blocking for this long is worth killing (SqlThresholds.lock_wait_ms)

# what to do about a head that is not a session (no session to kill)
HOLDER_ADVICE = {
    "prepared_transaction": "A prepared transaction keeps its locks until someone commits or rolls it back "
    "(PostgreSQL: COMMIT PREPARED / ROLLBACK PREPARED with its gid; MySQL/MariaDB: XA COMMIT / XA ROLLBACK "
    "with the xid that XA RECOVER lists). No session holds it, so killing sessions releases nothing: ask the "
    "transaction manager that prepared it what the outcome should be, then resolve it",
    "orphaned_distributed_transaction": "blocking_session_id -2 is an orphaned distributed (DTC) "
    "transaction: "
    "no session holds it. Find its unit of work (request_owner_guid in sys.dm_tran_locks where "
    "request_session_id = -2), confirm its outcome with MSDTC, then resolve it with KILL 'unit-of-work-id'",
    "deferred_recovery_transaction": "blocking_session_id -3 is a deferred recovery transaction: a "
    "transaction whose rollback SQL Server deferred (usually an unavailable page or file). It clears when "
    "the database's recovery completes; the error log names the cause",
    "latch_owner_unknown": "blocking_session_id -4/-5: the latch owner is not tracked (a latch in a state "
    "transition, or a latch type SQL Server does not track); look at the waits and resources, not at a "
    "session",
    "unknown": "The engine reports the wait but not its holder (e.g. a metadata lock while "
    "performance_schema's wait/lock/metadata/sql/mdl instrument is off)",
}


def _blocked_line(b: an.BlockedSession) -> str:
    mode = f" ({b.lock_mode} lock)" if b.lock_mode else ""
    others = [x for x in b.blockers if x != b.blocked_by_name]
    also = f", also waiting on {', '.join(others)}" if others else ""
    return (
        f"{_session(b.session_id, b.login_name, b.host_name, b.program_name)} blocked by {b.blocked_by_name}"
        f"{also}, waiting {b.wait_type or 'on a lock'}{mode} for {_secs(b.wait_time_ms)}"
    )


def _chain_finding(ev: Evidence, c: an.BlockingChain, lock_wait_ms: float = LONG_BLOCK_MS) -> Finding:
    inst, head, h, n = ev.entity, c.head_session_id, c.head, len(c.blocked)
    blocked = "; ".join(_blocked_line(b) for b in c.blocked[:MAX_LISTED]) + (
        f"; and {n - MAX_LISTED} more" if n > MAX_LISTED else ""
    )
    state = h.state if h else "not in the session snapshot"
    if c.deadlock:
        members = ", ".join(map(str, c.cycle_session_ids))
        title = f"Deadlock in progress on {inst}: sessions {members} block each other"
        detail = (
            f"The blocking chain is a cycle (a deadlock in progress); the engine's deadlock monitor should "
            f"pick a victim. {blocked}. Longest wait {_secs(c.max_wait_ms)}."
        )
    elif c.head_holder is not None:
        holder = c.head_holder
        title = (
            f"Blocking chain on {inst}: the head blocker is {holder.words}, blocking {_plural(n, 'session')}"
        )
        since = f" (since {holder.since})" if holder.since else ""
        detail = (
            f"Head blocker: {holder.words}{since}, not a session. Blocked: {blocked}. Chain depth {c.depth}; "
            f"longest wait {_secs(c.max_wait_ms)}, total {_secs(c.total_wait_ms)}. "
            f"{HOLDER_ADVICE.get(holder.kind, HOLDER_ADVICE['unknown'])}."
        )
    else:
        title = f"Blocking chain on {inst}: head blocker session {head} blocks {_plural(n, 'session')}"
        head_desc = f"Head blocker session {head}"
        if h is not None:
            who = _who(h.login_name, h.host_name, h.program_name)
            head_desc += (f" ({who})" if who else "") + (
                f" in database {h.database_name}" if h.database_name else ""
            )
        head_desc += f" is {state}"
        if h is not None and h.idle_in_transaction and h.elapsed_ms:
            head_desc += f" (transaction open for {_mins(h.elapsed_ms)})"
        if h is not None and h.sql_text:
            head_desc += f"; its last statement: {h.sql_text}"
        detail = (
            f"{head_desc}. Blocked: {blocked}. Chain depth {c.depth}; longest wait {_secs(c.max_wait_ms)}, "
            f"total {_secs(c.total_wait_ms)}."
        )
        if c.co_blocked:
            shared = "; ".join(f"session {w} also waits on {', '.join(o)}" for w, o in c.co_blocked.items())
            detail += (
                f" Other heads block the same sessions: {shared}; they stay blocked until every holder ends."
            )
    severity = Severity.CRITICAL if c.deadlock or c.max_wait_ms >= lock_wait_ms else Severity.WARNING
    f = finding_on(ev, "blocking_chain", severity, title, detail, **c.model_dump(mode="json"))
    killable = head is not None and head > 0 and c.head_holder is None
    if killable and not c.deadlock and (c.head_idle_in_transaction or c.max_wait_ms >= lock_wait_ms):
        assert head is not None
        why = "rolls back its open transaction" if c.head_idle_in_transaction else "rolls back its work"
        unknown = "" if h is not None else " It is not in the session snapshot: look it up before acting."
        shared = (
            " Other holders block some of the same sessions, so they may stay blocked until those end too."
            if c.co_blocked
            else ""
        )
        f.remediation = ProposedAction(
            action="kill_session",
            target=f"{inst} session {head}",
            target_ref=session_target(inst, head, h),
            reason=(
                f"Session {head} is {state} and blocks {_plural(n, 'session')} for up to "
                f"{_secs(c.max_wait_ms)}; killing it {why} and releases its locks.{unknown}{shared}"
            ),
            evidence=[ev.id],
        )
    return f


KILL_IDLE_TX_MS = 3_600_000  # a transaction left open by an idle session this long is worth ending
_LONG_TX_HARM = {
    "postgresql": "it holds back the xmin horizon, so VACUUM cannot remove the dead tuples of rows changed "
    "since it began (tables and indexes bloat), and it keeps its locks",
    "mssql": "it keeps its locks, keeps the transaction log from being truncated and, under row versioning, "
    "keeps the tempdb version store from being cleaned up",
    "mysql": "it keeps its row locks and keeps InnoDB's undo history from being purged",
}
_LONG_TX_HARM_ANY = (
    "a transaction left open holds its locks and keeps row versions (tempdb version store, PostgreSQL dead "
    "tuples) from being cleaned up"
)


def _long_tx_finding(ev: Evidence, t: an.SessionBrief, engine: Engine | None = None) -> Finding:
    who = _who(t.login_name, t.host_name, t.program_name)
    opened = _mins(t.elapsed_ms)
    title = f"Session {t.session_id}" + (f" ({who})" if who else "")
    title += f" has had a transaction open for {opened}"
    detail = f"On {ev.entity}, session {t.session_id} is {t.state}"
    if t.database_name:
        detail += f" in database {t.database_name}"
    harm = _LONG_TX_HARM.get(engine or "")
    detail += f" with a transaction open for {opened}; {harm}" if harm else f"; {_LONG_TX_HARM_ANY}"
    if t.sql_text:
        detail += f". Last statement: {t.sql_text}"
    f = finding_on(ev, "long_open_transaction", Severity.WARNING, title, detail, **t.model_dump(mode="json"))
    if t.elapsed_ms >= KILL_IDLE_TX_MS and t.session_id > 0:
        f.remediation = ProposedAction(
            action="kill_session",
            target=f"{ev.entity} session {t.session_id}",
            target_ref=session_target(ev.entity, t.session_id, t),
            reason=(
                f"Session {t.session_id}" + (f" ({who})" if who else "") + f" is {t.state} and has held a "
                f"transaction open for {opened} without doing any work; {harm or _LONG_TX_HARM_ANY}. "
                "Killing it rolls back that transaction and releases what it holds."
            ),
            evidence=[ev.id],
        )
    return f


def _holder(h: an.SessionHolder) -> str:
    """'crm_sync@10.12.4.21-24': who holds a group of idle sessions."""
    return "@".join(p for p in ("/".join(h.logins), _hosts(h.hosts)) if p)


def _summary_finding(ev: Evidence, m: an.SessionSummary) -> Finding:
    inst = ev.entity
    statuses = ", ".join(f"{n} {status}" for status, n in m.by_status.items())
    holders = ", ".join(
        f"{h.name} {h.sessions}" + (f" ({_holder(h)})" if _holder(h) else "")
        for h in m.idle_holders[:MAX_HOLDERS]
    ) + (f" and {len(m.idle_holders) - MAX_HOLDERS} more" if len(m.idle_holders) > MAX_HOLDERS else "")
    top = m.idle_holders[0] if m.idle_holders else None
    held = ""
    if top is not None:
        held = f"; {top.sessions} held by {top.name}" + (f" ({_holder(top)})" if _holder(top) else "")
    detail = f"By status: {statuses}." + (f" Idle sessions by application: {holders}." if holders else "")
    if m.connection_pressure:
        title = (
            f"Idle connections on {inst}: {m.idle} of {_plural(m.total, 'session')} are idle "
            f"({_pct(m.idle_share_pct)}){held}"
        )
        detail += (
            " Most connections are held open without doing any work, each taking a connection slot: the "
            "sign of a connection pool sized far above its need or of connections not returned to the pool "
            "(a leak); once they reach the instance's connection limit, new connections are refused."
            + (f" Cap the pool size or set an idle timeout in {top.name}." if top is not None else "")
        )
    else:
        title = f"Sessions on {inst}: {statuses}" + (f"; most idle ones held by {top.name}" if top else "")
    severity = Severity.WARNING if m.connection_pressure else Severity.INFO
    return finding_on(ev, "session_summary", severity, title, detail, **m.model_dump(mode="json"))
