"""Cross-source reasoning, in one place: link findings from every specialist into causal chains.

A link joins a cause to an effect when they concern the same entity or a dependency edge (a logged
host:port, a blocked session's client host, a named instance), come in a plausible order in time,
and match a known cause -> effect relation: an open transaction -> the blocking chain -> the blocked
statements, lock waits and the clients' timeouts; a change -> what moved right after it; a full log
or disk -> the errors it causes; an exhausted pool -> the request errors; a query -> the CPU it holds;
writes -> the storage they fill; a failover -> refused connections; a sick dependency -> its callers'
failures. The root of the best-supported chain leads the answer; symptoms are shown as symptoms;
a chain with nothing in common with it is reported as an independent second fault.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from tools.base import Finding, Severity
from tools.world import parse_ts

Resolve = Callable[[str], str | None]
SLACK = timedelta(minutes=10)  # clocks and sampling: an effect may appear to start a little early
AFTER_CHANGE = timedelta(minutes=60)  # what moves this soon after a change is linked to it

_SYMPTOM_KINDS = {
    "error_signature", "dependency_failure", "server_errors", "slow_calls", "step_change", "metric_anomaly",
    "metric_high", "rising_trend", "regressed_query", "log_burst", "retries", "wait_profile", "log_search",
    "deadlock", "peer_outlier", "days_until_full", "capacity_exhausted", "pool_saturated",
}  # fmt: skip
_CHANGE_KINDS = {"log_precursor", "change_in_window"}
_SPACE_KINDS = {"capacity_exhausted", "days_until_full", "log_nearly_full", "tempdb_nearly_full", "volume_low"}
_POOL_KINDS = {"pool_saturated", "connection_pool_leak"}
_FAILURE_WORDS = re.compile(r"timeout|timed out|time out|refused|no response|unreachable|503|502|504|5xx|fail|"
                            r"could not|cannot connect|exception|error", re.IGNORECASE)  # fmt: skip
_LOAD_SERIES = re.compile(r"latency|duration|p9\d|response|queue|wait|iops|throughput|load|connections|"
                          r"commit|read|write|error|cpu|lag", re.IGNORECASE)  # fmt: skip


def key(f: Finding) -> str:
    return f"{f.kind}|{f.entity}|{f.title}"


class Link(BaseModel):
    cause: str  # finding keys
    effect: str
    why: str  # the relation in words
    same: bool = False  # the same fact seen twice (e.g. the head blocker's open transaction), not an effect


class Chain(BaseModel):
    root: str
    members: list[str]  # root first, then breadth first along the links
    links: list[Link]
    support: tuple[int, int, int]  # (explains any symptom, worst severity, symptoms): higher is better supported


class Correlation(BaseModel):
    chains: list[Chain] = Field(default_factory=list)  # best supported first (problems only)
    causes: dict[str, list[Link]] = Field(default_factory=dict)  # effect key -> the links into it

    @property
    def root(self) -> str | None:
        return self.chains[0].root if self.chains and self.chains[0].links else None

    def role(self, k: str) -> str:
        """root | same | symptom | independent | '' (for the findings list)."""
        if not self.chains:
            return ""
        if k == self.chains[0].root and self.chains[0].links:
            return "root"
        links = self.causes.get(k, [])
        if any(not link.same for link in links):
            return "symptom"
        if links:
            return "same"
        if any(c.root == k for c in self.chains[1:]) and self.chains[0].links:
            return "independent"
        return ""


# --- facts about findings -----------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return parse_ts(value)
    except (TypeError, ValueError):
        return None


def onset(f: Finding, now: datetime) -> datetime | None:
    """When what a finding describes began, as far as its data says."""
    d = f.data
    for field in ("since", "first_seen", "at", "start", "start_date", "first_ts", "first_error"):
        if (t := _time(d.get(field))) is not None:
            return t
    head = d.get("head") if isinstance(d.get("head"), dict) else None
    elapsed = (head or d).get("elapsed_ms")
    if f.kind in ("blocking_chain", "long_open_transaction") and isinstance(elapsed, int | float) and elapsed:
        return now - timedelta(milliseconds=float(elapsed))
    return None


def _norm_sql(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"'[^']*'|@\w+|\$\d+|\?|\d+", "?", text or "")).strip().lower()


def _blocked(f: Finding) -> list[dict[str, Any]]:
    return [b for b in f.data.get("blocked", []) if isinstance(b, dict)]


def _head_id(f: Finding) -> str | None:
    v = f.data.get("head_session_id")
    return None if v is None else str(v)


def _is_problem(f: Finding) -> bool:
    return f.severity is not Severity.INFO and f.kind != "similar_incident"


def _series(f: Finding) -> str:
    return str(f.data.get("series") or f.title)


class _Facts:
    """Entity relations the findings themselves establish (dependency edges)."""

    def __init__(self, findings: list[Finding], resolve: Resolve) -> None:
        self.resolve = resolve
        self.edges: set[tuple[str, str]] = set()  # (caller, dependency), lower-case entity names
        self.clients: dict[str, set[str]] = {}  # instance -> its blocked sessions' hosts and programs
        self.kinds: dict[str, set[str]] = {}  # entity -> the kinds of finding on it
        for f in findings:
            self.kinds.setdefault(f.entity.lower(), set()).add(f.kind)
        for f in findings:
            caller = f.entity.lower()
            for field in ("peer", "peer_host"):
                if isinstance(peer := f.data.get(field), str):
                    name = resolve(peer) or peer.split(":")[0]
                    self.edges.add((caller, name.lower()))
            for b in _blocked(f):  # a blocked session's client host and program call the instance
                for who in (b.get("host_name"), b.get("program_name")):
                    if who:
                        self.clients.setdefault(caller, set()).add(str(who).lower())

    def calls(self, caller: str, dependency: str) -> bool:
        """`caller` depends on `dependency`: it logged failures towards it, or it is (or is named in) the
        host or program of a session blocked there ("checkout" in "Checkout API")."""
        caller, dependency = caller.lower(), dependency.lower()
        if (caller, dependency) in self.edges:
            return True
        word = re.compile(r"(?<![\w-])" + re.escape(caller) + r"(?![\w-])")
        instance = re.compile(r"(.+?)-?\d+$")  # shop-api-1 is an instance of the service shop-api
        service = m.group(1) if (m := instance.fullmatch(caller)) else None
        return any(word.search(who) or (service and who == service) for who in self.clients.get(dependency, ()))

    def has(self, entity: str, *kinds: str) -> bool:
        return bool(self.kinds.get(entity.lower(), set()) & set(kinds))

    def related(self, a: Finding, b: Finding) -> bool:
        """Same entity, a dependency edge either way, or one names the other."""
        ea, eb = a.entity.lower(), b.entity.lower()
        if ea == eb or self.calls(ea, eb) or self.calls(eb, ea) or replica_of(ea, eb) or replica_of(eb, ea):
            return True
        return _names(a, b.entity) or _names(b, a.entity)


def replica_of(replica: str, primary: str) -> bool:
    """`analytics-prod-replica-1` is a replica of `analytics-prod` (RDS and common naming)."""
    return bool(re.fullmatch(re.escape(primary.lower()) + r"-(?:replica|standby|secondary|reader|ro|read)\b[\w-]*",
                             replica.lower()))  # fmt: skip


def _names(f: Finding, entity: str) -> bool:
    return bool(re.search(r"(?<![\w-])" + re.escape(entity.lower()) + r"(?![\w-])", f.text.lower()))


# --- relations ----------------------------------------------------------------------------------


def _in_order(cause: Finding, effect: Finding, now: datetime, within: timedelta | None = None) -> bool:
    c, e = onset(cause, now), onset(effect, now)
    if c is None or e is None:
        return within is None
    if e + SLACK < c:
        return False
    return within is None or e - c <= within


def _relation(c: Finding, e: Finding, facts: _Facts, now: datetime) -> tuple[str, bool] | None:
    """Why `c` explains `e` ((words, same fact)), or None."""
    same = c.entity.lower() == e.entity.lower()
    ck, ek = c.kind, e.kind
    if ck == "blocking_chain" and not c.data.get("deadlock"):
        head = _head_id(c)
        if ek == "long_open_transaction" and same and str(e.data.get("session_id")) == head:
            return f"session {head}'s open transaction is what holds the locks", True
        if ek == "regressed_query" and same:
            stmt = _norm_sql(str(e.data.get("sql_text", "")))
            waiting = [b for b in _blocked(c) if stmt and _norm_sql(str(b.get("sql_text", ""))) == stmt]
            if waiting:
                ids = ", ".join(str(b.get("session_id")) for b in waiting[:3])
                return f"the same statement is waiting on session {head}'s locks (blocked sessions {ids})", False
        if ek == "wait_profile" and same and re.search(r"lock", e.title, re.I):
            return "the lock waits are the blocked sessions waiting", False
        if ek in _SYMPTOM_KINDS - {"regressed_query", "wait_profile", "deadlock"} and not same:
            if facts.calls(e.entity, c.entity) and (_FAILURE_WORDS.search(e.text) or ek in ("step_change", "slow_calls")):
                return f"{e.entity}'s requests wait behind the blocked sessions on {c.entity}", False
    if ck == "long_open_transaction" and same and ek in ("log_nearly_full",) and _in_order(c, e, now):
        return "the open transaction keeps the transaction log from being reused", False
    if ck in _CHANGE_KINDS and ek in _SYMPTOM_KINDS | {"pool_saturated"} and _is_problem(e):
        related = same or facts.related(c, e) or (ck == "change_in_window" and c.data.get("cmdb_ci") and
                                                   facts.related(e, c))  # fmt: skip
        if related and _in_order(c, e, now, AFTER_CHANGE) and onset(e, now) is not None:
            return f"it began right after the {c.data.get('change') or 'change'}", False
        if related and ek == "regressed_query" and onset(e, now) is None and (onset(c, now) or now) <= now:
            return "the change ran in the window; the statement is now slower than its baseline from before it", False
    if (ck in _SPACE_KINDS or ck == "write_attribution") and ek == "error_signature" and (same or facts.related(c, e)):
        if e.data.get("category") in ("disk_full", "log_full") or re.search(
            r"no space|is full|could not extend|insufficient stor|(?:storage|space|disk)\b.{0,25}\b(?:low|remaining|full)|out of (?:disk|storage)? ?space",
            e.text, re.I,
        ):
            return "writes fail because there is no space left", False
    if ck in _POOL_KINDS and (same or facts.related(c, e)) and _is_problem(e):
        latency = ek in ("step_change", "metric_anomaly", "rising_trend") and re.search(
            r"latency|duration|p9\d|response", _series(e), re.I
        )
        if (ek in ("error_signature", "server_errors", "dependency_failure", "slow_calls") and _FAILURE_WORDS.search(e.text)
                or latency or ek == "slow_calls") and _in_order(c, e, now):  # fmt: skip
            return "callers wait for a free connection and time out", False
        cpu = re.search(r"cpu|load", _series(e), re.I) and ek in ("metric_high", "step_change", "metric_anomaly", "bounded_forecast")
        if ck == "connection_pool_leak" and same and (ek == "cpu_attribution" or cpu):
            return "the sessions that pile up keep running the statements that hold the CPU", False
    if ck == "wait_profile" and same and ek == "wait_profile":
        return None
    if same and c.data.get("series") and c.data.get("series") == e.data.get("series") and _first(c, e):
        return "the same series", True
    if ck == ek and ck in _CHANGE_KINDS and _change_id(c) == _change_id(e) and _first(c, e):
        return "the same change, seen on another entity", True
    if ck == "regressed_query" and ek in ("cpu_attribution", "same_workload") and same:
        stmt = _norm_sql(str(c.data.get("sql_text", "")))
        other = _norm_sql(str((e.data.get("statement") or e.data.get("cpu_statement") or {}).get("sql_text", "")))
        if stmt and other and (stmt.startswith(other[:60]) or other.startswith(stmt[:60])):
            return "the regressed statement is the one holding the CPU", False
    if ck.startswith("interface_") and ek == "error_signature" and same and c.data.get("name") and \
            re.search(r"(?<![\w/])" + re.escape(str(c.data["name"])) + r"(?![\w/])", e.text):  # fmt: skip
        return "the device's own log of the same interface event", True
    if ck == ek == "error_signature" and same and _first(c, e) and (
        _logged_together(c, e) or (c.data.get("codes") and c.data.get("codes") == e.data.get("codes"))
    ):
        return "the same error", True
    if ck == "error_signature" and ek == "log_burst" and same and _within(e, c):
        return "the burst is these errors", True
    if ck == "session_summary" and same and _is_problem(c):
        if ek == "error_signature" and e.data.get("category") == "too_many_connections":
            return "the idle sessions hold the connection slots", False
        if ek == "wait_profile" and re.search(r"client", e.title, re.I):
            return "the same idle sessions, seen in the wait profile", True
    if ck == "error_signature" and ek == "log_nearly_full" and same and c.data.get("category") != "log_full" and \
            _BACKUP_FAILED.search(c.title):  # fmt: skip
        return "log backups fail, so the transaction log cannot be truncated and fills up", False
    if ek == "wait_profile" and same and _is_problem(e) and (why := _waits_explained(c, e)) is not None:
        return why
    if ck == "independent_workloads" and same and ek in ("metric_high", "step_change", "metric_anomaly", "bounded_forecast"):
        if re.search(r"cpu|read", _series(e), re.I):
            return "the read-only workload holds the CPU (not the writes)", False
    if ek == "bounded_forecast" and same and ck in ("metric_high", "step_change", "metric_anomaly", "rising_trend"):
        if _series(c) == _series(e):
            return "the same series, projected to its limit", True
    if ck == "failover_timeline" and ek == "error_signature" and same:
        messages = " ".join(str(step.get("message", "")) for step in c.data.get("steps", []) if isinstance(step, dict))
        if str(e.data.get("example", "\0"))[:80] in messages:
            return "the failover's own events", True
    if ck in ("cpu_attribution", "same_workload") and same and ek in ("metric_high", "step_change", "metric_anomaly", "bounded_forecast"):
        if re.search(r"cpu|read|load|latency", _series(e), re.I):
            return "this statement holds the CPU time", False
    writer = ck in ("write_attribution", "same_workload", "write_heavy_wal") or (
        ck == "independent_workloads" and not facts.has(c.entity, "write_heavy_wal", "write_attribution")
    )
    if writer and ek in ("days_until_full", "capacity_exhausted", "step_change", "metric_anomaly", "rising_trend",
                         "bounded_forecast"):  # fmt: skip
        if same and re.search(r"free|storage|disk|write|wal|transactionlog|commit|queue|binlog", _series(e), re.I):
            return "these writes fill the storage and load the disks", False
        if replica_of(e.entity, c.entity) and re.search(r"lag|delay|behind", _series(e), re.I):
            return f"the replica replays the WAL these writes generate on {c.entity}", False
    if writer and ek == "slow_calls" and same and re.search(r"checkpoint|wal|flush|fsync|write", e.text, re.I):
        return "the write volume makes checkpoints and flushes slow", False
    if ck == "write_heavy_wal" and ek in ("write_attribution", "same_workload") and same:
        return "the same write statement", True
    if ck == "failover_timeline" and ek in ("dependency_failure", "error_signature", "server_errors") and not same:
        if facts.related(e, c) and _FAILURE_WORDS.search(e.text) and _in_order(c, e, now, timedelta(minutes=15)):
            return f"{c.entity} was failing over: connections were refused until it was available again", False
    if ek == "server_errors" and ck == "error_signature" and same and status_in(c) and _first(c, e):
        return "the same log lines", True
    if ek in ("error_signature", "server_errors", "retries", "log_burst") and same and ck in ("dependency_failure", "slow_calls"):
        ex_c, ex_e = str(c.data.get("example", "")), str(e.data.get("example", e.title))
        if ex_c and (ex_c[:60] in e.title or ex_c[:60] in ex_e or ek in ("server_errors", "retries")):
            return "the same log lines", True
    if ck in ("dependency_failure", "error_signature", "server_errors") and same and _is_problem(c) and ek in (
        "days_until_full", "bounded_forecast", "rising_trend", "step_change"
    ) and re.search(r"spool|queue|backlog|retry|outbox|buffer|pending", _series(e), re.I) and _in_order(c, e, now):
        return "the failed work queues up on this host", False
    if ck == "rising_trend" and ek == "error_signature" and same and re.search(r"lag|behind", _series(c), re.I) and \
            re.search(r"WAL|segment|binlog|log position", e.text, re.I) and re.search(r"removed|purged|not found|no longer", e.text, re.I):  # fmt: skip
        return "the replica fell so far behind that the log it needed was already recycled", False
    if ek == "dependency_failure" and _is_problem(c) and ck not in ("dependency_failure", "log_search"):
        if facts.calls(e.entity, c.entity) and not same:
            return f"{e.entity} depends on {c.entity}", False
    return None


_WAIT_CAUSES: list[tuple[re.Pattern[str], set[str], bool]] = [
    (re.compile(r"client", re.I), {"connection_pool_leak", "pool_saturated"}, True),
    (re.compile(r"\bI/O|WAL|log writes", re.I), {"write_attribution", "same_workload", "independent_workloads",
                                                 "write_heavy", "write_heavy_wal", "days_until_full",
                                                 "capacity_exhausted", "log_nearly_full"}, False),  # fmt: skip
    (re.compile(r"\bCPU\b", re.I), {"cpu_attribution", "same_workload", "independent_workloads"}, False),
]


def _waits_explained(c: Finding, e: Finding) -> tuple[str, bool] | None:
    """A wait profile on the same instance whose dominant wait is what the cause would make sessions wait on."""
    dominant = e.title.split(" dominated by ", 1)[-1]
    for pattern, kinds, same_fact in _WAIT_CAUSES:
        if pattern.search(dominant) and c.kind in kinds:
            return ("the same idle sessions, seen in the wait profile" if same_fact
                    else "what the sessions wait on while it runs"), same_fact  # fmt: skip
    return None


_BACKUP_FAILED = re.compile(r"backup\w*\b.{0,60}\b(?:fail|error|denied)|\b3041\b|BackupDiskFile|BackupIoRequest", re.I)


def _within(inner: Finding, outer: Finding) -> bool:
    t = _time(inner.data.get("start"))
    a, b = _time(outer.data.get("first_seen")), _time(outer.data.get("last_seen"))
    return t is not None and a is not None and b is not None and a - SLACK <= t <= b + SLACK


def _logged_together(a: Finding, b: Finding) -> bool:
    """Two signatures written as one event: the same count, first and last time within 2 s."""
    if a.data.get("count") != b.data.get("count"):
        return False
    pairs = [(_time(a.data.get(k)), _time(b.data.get(k))) for k in ("first_seen", "last_seen")]
    return all(x is not None and y is not None and abs((x - y).total_seconds()) <= 2 for x, y in pairs)


def status_in(f: Finding) -> bool:
    return bool(re.search(r"\b5\d\d\b", f.text))


def _first(a: Finding, b: Finding) -> bool:
    """Of two findings that say the same thing, the more severe (then the first by key) leads."""
    return (a.severity.rank, key(b)) > (b.severity.rank, key(a))


def _change_id(f: Finding) -> str:
    if f.kind == "change_in_window":
        return str(f.data.get("number"))
    from tools.logs.analysis import message_template

    return message_template(str(f.data.get("message", "")))


def _co_moving(c: Finding, e: Finding, now: datetime) -> bool:
    """A load/latency series on the same entity that moved together with (after) a cause there."""
    return (
        c.entity.lower() == e.entity.lower()
        and e.kind in ("step_change", "metric_anomaly", "metric_high", "rising_trend")
        and bool(_LOAD_SERIES.search(_series(e)))
        and _in_order(c, e, now)
    )


# --- chains -------------------------------------------------------------------------------------


def correlate(findings: list[Finding], resolve: Resolve, now: datetime) -> Correlation:
    """Link the findings (deduplicated, any order) into chains; the best-supported first."""
    facts = _Facts(findings, resolve)
    keys = [key(f) for f in findings]
    links: list[Link] = []
    for c, kc in zip(findings, keys, strict=True):
        for e, ke in zip(findings, keys, strict=True):
            if kc == ke:
                continue
            if (found := _relation(c, e, facts, now)) is not None:
                links.append(Link(cause=kc, effect=ke, why=found[0], same=found[1]))
    causes: dict[str, list[Link]] = {}
    for link in links:
        if not _reaches(links, link.effect, link.cause):  # no cycles
            causes.setdefault(link.effect, []).append(link)
    kept = [link for ls in causes.values() for link in ls]
    by_key = dict(zip(keys, findings, strict=True))
    # metric series on an entity that already has a root move with it: likely effects, linked weakly
    for root in [k for k in keys if k not in causes and any(link.cause == k for link in kept)]:
        if root in causes:  # became an effect of an earlier root in this loop
            continue
        for ke in keys:
            if ke != root and ke not in causes and _co_moving(by_key[root], by_key[ke], now) and _is_problem(by_key[ke]):
                link = Link(cause=root, effect=ke, why="moved on the same instance at the same time (likely an effect)")
                causes.setdefault(ke, []).append(link)
                kept.append(link)
    chains = []
    for k, f in zip(keys, findings, strict=True):
        if k in causes or not (_is_problem(f) or any(link.cause == k for link in kept)):
            continue
        members, chain_links = _walk(k, kept)
        worst = max(by_key[m].severity.rank for m in members)
        effects = sum(not link.same for link in chain_links)
        chains.append(Chain(root=k, members=members, links=chain_links, support=(int(effects > 0), worst, effects)))
    chains.sort(key=lambda c: (c.support, by_key[c.root].severity.rank), reverse=True)
    return Correlation(chains=chains, causes=causes)


def _reaches(links: list[Link], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        k = todo.pop()
        for link in links:
            if link.cause == k and link.effect not in seen:
                if link.effect == goal:
                    return True
                seen.add(link.effect)
                todo.append(link.effect)
    return False


def _walk(root: str, links: list[Link]) -> tuple[list[str], list[Link]]:
    members, out, todo = [root], [], [root]
    while todo:
        k = todo.pop(0)
        for link in links:
            if link.cause == k and link.effect not in members:
                members.append(link.effect)
                out.append(link)
                todo.append(link.effect)
    return members, out


# --- rendering ----------------------------------------------------------------------------------


def chain_lines(corr: Correlation, findings: list[Finding], number: dict[str, int], refs: dict[str, list[str]]) -> list[str]:
    """The best chain link by link (root first, each with its evidence refs), then independent faults."""
    if corr.root is None:
        return []
    by_key = {key(f): f for f in findings}

    def cite(k: str) -> str:
        r = refs.get(k) or []
        return f" [{', '.join(r)}]" if r else ""

    best = corr.chains[0]
    root = by_key[best.root]
    lines = ["Causal chain (root cause first; each link cites its evidence):",
             f"  Root cause (finding {number[best.root]}): {root.title}{cite(best.root)}"]  # fmt: skip
    depth = {best.root: 0}
    for link in best.links:
        level = depth.get(link.cause, 0) + 1
        depth[link.effect] = level
        f = by_key[link.effect]
        arrow = "=" if link.same else "→"
        label = "same fact" if link.same else "symptom"
        lines.append(f"  {'  ' * level}{arrow} {label} (finding {number[link.effect]}): {f.title}{cite(link.effect)} — {link.why}")
    shown = set(best.members)
    for other in corr.chains[1:]:
        if other.root in shown or not _is_problem(by_key[other.root]):
            continue
        f = by_key[other.root]
        n = len([m for m in other.members if m not in shown]) - 1
        extra = f", with {n} symptom{'s' if n != 1 else ''}" if n > 0 else ""
        lines.append(f"  Independent second fault, unrelated to this chain (finding {number[other.root]}): {f.title}{cite(other.root)}{extra}")
        shown |= set(other.members)
    return lines


def role_words(corr: Correlation, k: str, number: dict[str, int]) -> str:
    """How the findings list labels a finding: "root cause", "symptom of 1", "independent fault"."""
    role = corr.role(k)
    if role in ("symptom", "same"):
        causes = [number[link.cause] for link in corr.causes.get(k, []) if link.cause in number]
        word = "symptom of" if role == "symptom" else "same as"
        return f"{word} {', '.join(str(n) for n in sorted(set(causes)))}" if causes else role
    return {"root": "root cause", "independent": "independent fault"}.get(role, "")


__all__ = ["Chain", "Correlation", "Link", "chain_lines", "correlate", "key", "onset"]
