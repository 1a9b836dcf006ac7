"""Blocking chains: every blocker of every waiter, heads that are not sessions named for what they are.

A waiter may be blocked by several holders at once (PostgreSQL's pg_blocking_pids array, several
InnoDB transactions holding a row in shared mode, parallel tasks of one SQL Server request): every one
is an edge. A head is a holder that waits on nobody; a cycle is a deadlock in progress. Holders that
are not sessions - a prepared transaction, SQL Server's orphaned distributed transaction (-2),
deferred recovery transaction (-3) or unknown latch owner (-4, -5) - head a chain too, but are never a
session to kill.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from tools.redact import redact_sql
from tools.world import Blocker, BlockerKind, SessionRow

Node = int | str  # a session id, or "kind:name" for a holder that is not a session

# SQL Server's negative blocking_session_id values (sys.dm_exec_requests, sys.dm_os_waiting_tasks)
SPECIAL_BLOCKERS: dict[int, BlockerKind] = {
    -2: "orphaned_distributed_transaction",
    -3: "deferred_recovery_transaction",
    -4: "latch_owner_unknown",
    -5: "latch_owner_unknown",
}
BLOCKER_WORDS: dict[str, str] = {
    "prepared_transaction": "prepared transaction",
    "orphaned_distributed_transaction": "orphaned distributed transaction",
    "deferred_recovery_transaction": "deferred recovery transaction",
    "latch_owner_unknown": "latch owner the engine does not track",
    "unknown": "holder the engine does not name",
}


def redacted(text: str | None) -> str:
    """SQL text safe to show: literals replaced by `?`, personal data masked, whitespace collapsed."""
    return " ".join(redact_sql(text or "").split())


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


def brief(s: SessionRow) -> dict[str, Any]:
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


class HolderBrief(BaseModel):
    """A head that is not a session: what it is, its name, since when."""

    kind: BlockerKind
    name: str | None = None
    since: str | None = None
    session_id: int | None = None  # the raw id the engine reported (0, -2, -3, -4)

    @property
    def words(self) -> str:
        what = BLOCKER_WORDS.get(self.kind, self.kind)
        return f"{what} '{self.name}'" if self.name and self.kind == "prepared_transaction" else what


class BlockedSession(SessionBrief):
    blocked_by: int | None  # the session it waits on in this chain; None when that is not a session
    blocked_by_name: str  # "57", or "prepared transaction 'gx1'"
    level: int  # 1 = blocked directly by the head
    blockers: list[str] = Field(default_factory=list)  # every holder it waits on, as named
    lock_mode: str | None = None  # the mode it asks for, where the engine says
    held_mode: str | None = None  # the mode its blocker holds


class BlockingChain(BaseModel):
    head_session_id: int | None  # None when the head is not a session (see head_holder)
    head: SessionBrief | None = None  # None when the head is only named by its waiters
    head_holder: HolderBrief | None = None  # a head that is not a session
    blocked: list[BlockedSession] = Field(default_factory=list)  # breadth first, longest wait first
    blocked_session_ids: list[int] = Field(default_factory=list)
    depth: int = 0  # longest chain: 57 <- 88 <- 91 is depth 2
    max_wait_ms: float = 0.0
    total_wait_ms: float = 0.0
    deadlock: bool = False  # the blockers form a cycle: a deadlock in progress
    cycle_session_ids: list[int] = Field(default_factory=list)
    co_blocked: dict[str, list[str]] = Field(default_factory=dict)  # waiter -> other heads it also waits on

    @property
    def head_idle_in_transaction(self) -> bool:
        return self.head is not None and self.head.idle_in_transaction

    @property
    def head_words(self) -> str:
        if self.head_holder is not None:
            return self.head_holder.words
        return f"session {self.head_session_id}"


def _blockers(s: SessionRow) -> list[Blocker]:
    """Every holder `s` waits on: the engine's full list, else its one blocking_session_id."""
    if s.blocked_by is not None:
        found = [b for b in s.blocked_by if b.kind != "session" or b.session_id not in (None, s.session_id)]
    elif s.blocking_session_id in (None, 0) or s.blocking_session_id == s.session_id:
        found = []  # mssql parallel workers may "block" their own session
    else:
        found = [Blocker(session_id=s.blocking_session_id)]
    out = []
    for b in found:
        if b.kind == "session" and b.session_id is not None and b.session_id < 0:
            b = b.model_copy(update={"kind": SPECIAL_BLOCKERS.get(b.session_id, "unknown")})
        out.append(b)
    return out


def _node(b: Blocker) -> Node:
    if b.kind == "session" and b.session_id is not None:
        return b.session_id
    return f"{b.kind}:{b.name or b.session_id or ''}"


def _label(node: Node, holders: dict[str, HolderBrief]) -> str:
    return str(node) if isinstance(node, int) else holders[node].words


def blocking_chains(sessions: Sequence[SessionRow]) -> list[BlockingChain]:
    """Group blocked sessions under their head blockers, worst chain first (see the module docstring).

    A blocker missing from the rows is itself a head; a waiter blocked by several heads appears under
    each, with the others named in `co_blocked`."""
    by_id = {s.session_id: s for s in sessions}
    parents: dict[Node, list[Node]] = defaultdict(list)
    children: dict[Node, list[Node]] = defaultdict(list)
    edges: dict[tuple[Node, Node], Blocker] = {}
    holders: dict[str, HolderBrief] = {}
    for s in sessions:
        for b in _blockers(s):
            node = _node(b)
            if isinstance(node, str):
                holders.setdefault(
                    node, HolderBrief(kind=b.kind, name=b.name, since=b.since, session_id=b.session_id)
                )
            if node not in parents[s.session_id]:
                parents[s.session_id].append(node)
                children[node].append(s.session_id)
                edges[(s.session_id, node)] = b
    cycles = _cycles(parents)
    roots: list[tuple[Node, list[int]]] = [(h, []) for h in children if not parents.get(h)]
    roots += [(min(c), sorted(c)) for c in cycles]
    heads_of = _heads_of(roots, children)
    chains = [
        _chain(root, cycle, by_id, children, parents, edges, holders, heads_of) for root, cycle in roots
    ]
    return sorted(chains, key=lambda c: (-len(c.blocked), -c.max_wait_ms, c.head_session_id or -1))


def _cycles(parents: dict[Node, list[Node]]) -> list[list[int]]:
    """Strongly connected groups of two or more sessions in the waits-for graph (Tarjan, iterative)."""
    index: dict[Node, int] = {}
    low: dict[Node, int] = {}
    stack: list[Node] = []
    on_stack: set[Node] = set()
    found: list[list[int]] = []
    counter = 0
    for start in list(parents):
        if start in index:
            continue
        work: list[tuple[Node, int]] = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            nexts = parents.get(node, [])
            if i < len(nexts):
                work.append((node, i + 1))
                nxt = nexts[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(n for n in group if isinstance(n, int)))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return [c for c in found if len(c) > 1]


def _heads_of(roots: list[tuple[Node, list[int]]], children: dict[Node, list[Node]]) -> dict[Node, set[Node]]:
    """For every waiter, the roots (heads or cycles) it hangs under."""
    found: dict[Node, set[Node]] = defaultdict(set)
    for root, _ in roots:
        queue, seen = deque([root]), {root}
        while queue:
            for kid in children.get(queue.popleft(), []):
                if kid not in seen:
                    seen.add(kid)
                    found[kid].add(root)
                    queue.append(kid)
    return found


def _chain(
    head: Node,
    cycle: list[int],
    by_id: dict[int, SessionRow],
    children: dict[Node, list[Node]],
    parents: dict[Node, list[Node]],
    edges: dict[tuple[Node, Node], Blocker],
    holders: dict[str, HolderBrief],
    heads_of: dict[Node, set[Node]],
) -> BlockingChain:
    blocked: list[BlockedSession] = []
    seen: set[Node] = {head}
    queue: deque[tuple[Node, int]] = deque([(head, 0)])

    def wait_of(k: Node) -> float:
        return (by_id[k].wait_time_ms or 0.0) if isinstance(k, int) and k in by_id else 0.0

    while queue:
        node, level = queue.popleft()
        kids = sorted(children.get(node, []), key=lambda k: (-wait_of(k), str(k)))
        for kid in (k for k in kids if k not in seen and isinstance(k, int)):
            seen.add(kid)
            edge = edges[(kid, node)]
            row = by_id.get(kid) or SessionRow(session_id=kid)
            blocked.append(
                BlockedSession(
                    **brief(row),
                    blocked_by=node if isinstance(node, int) else None,
                    blocked_by_name=_label(node, holders),
                    level=level + 1,
                    blockers=[_label(p, holders) for p in parents.get(kid, [])],
                    lock_mode=edge.lock_mode,
                    held_mode=edge.held_mode,
                )
            )
            queue.append((kid, level + 1))
    waits = [b.wait_time_ms for b in blocked]
    co_blocked = {
        str(b.session_id): sorted(_label(h, holders) for h in heads_of.get(b.session_id, set()) if h != head)
        for b in blocked
        if len(heads_of.get(b.session_id, set()) - {head}) > 0 and not cycle
    }
    holder = holders.get(head) if isinstance(head, str) else None
    return BlockingChain(
        head_session_id=head if isinstance(head, int) else None,
        head=SessionBrief(**brief(by_id[head])) if isinstance(head, int) and head in by_id else None,
        head_holder=holder,
        blocked=blocked,
        blocked_session_ids=[b.session_id for b in blocked],
        depth=max((b.level for b in blocked), default=0),
        max_wait_ms=max(waits, default=0.0),
        total_wait_ms=sum(waits),
        deadlock=bool(cycle),
        cycle_session_ids=cycle,
        co_blocked=co_blocked,
    )


def long_open_transactions(
    sessions: Sequence[SessionRow], min_elapsed_ms: float = 600_000
) -> list[SessionBrief]:
    """Sleeping / idle-in-transaction sessions that have held a transaction for at least `min_elapsed_ms`."""
    found = [
        SessionBrief(**brief(s))
        for s in sessions
        if is_idle_in_transaction(s) and (s.transaction_ms or s.elapsed_ms or 0.0) >= min_elapsed_ms
    ]
    return sorted(found, key=lambda t: (-t.elapsed_ms, t.session_id))
