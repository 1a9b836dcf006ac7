"""What a request asks about, as concerns (tools/coverage.py): the words that name them, and what a DBA
expects checked when someone just asks "is it ok?".

The map is small and written in the operator's words, not in any scenario's phrasing. A symptom
word stands for every kind of problem that commonly produces it ("slow" -> latency, long-running
statements, blocking, waits, regressions, resource usage); a specific word for one concern.
"""

from __future__ import annotations

import re

from graphs.state import Scope
from tools.coverage import CONCERNS, Concern
from tools.inventory import Entity

# word or phrase -> concerns it asks about (matched as whole words, case-insensitive)
CONCERN_WORDS: dict[str, tuple[Concern, ...]] = {}


def _cue(concerns: tuple[Concern, ...], *words: str) -> None:
    for word in words:
        CONCERN_WORDS[word] = tuple(dict.fromkeys(CONCERN_WORDS.get(word, ()) + concerns))


SLOW: tuple[Concern, ...] = ("latency", "long_running", "blocking", "waits", "regressions", "resource_usage")
STUCK: tuple[Concern, ...] = ("blocking", "long_running", "waits", "deadlocks")

_cue(SLOW, "slow", "slower", "slowly", "slowness", "sluggish", "crawl", "crawls", "crawling", "degraded")
_cue(STUCK, "hang", "hangs", "hanging", "hung", "stuck", "freeze", "freezes", "frozen", "unresponsive")
_cue(("blocking", "long_running", "latency", "waits"), "timeout", "timeouts", "timing out", "timed out")
_cue(("blocking", "open_transactions"), "block", "blocks", "blocked", "blocking", "blocker", "blockers")
_cue(("blocking", "deadlocks"), "lock", "locks", "locked", "locking")
_cue(("open_transactions",), "open transaction", "open transactions", "idle in transaction", "vacuum")
_cue(("long_running",), "long-running", "long running", "running for", "runaway", "long queries")
_cue(("long_running",), "still running", "running queries", "running statements", "longest running")
_cue(("deadlocks",), "deadlock", "deadlocks", "deadlocked", "deadlocking", "40p01", "1205", "1213")
_cue(("waits",), "wait", "waits", "waiting", "wait type", "wait types")
_cue(("regressions",), "regression", "regressed", "plan change", "query plan", "execution plan")
_cue(("regressions", "long_running"), "slow query", "slow queries", "slowest queries", "expensive queries")
_cue(("connections",), "connection", "connections", "max_connections", "too many connections", "pool")
_cue(("space", "forecast"), "disk", "disks", "space", "full", "storage", "filling", "volume", "volumes")
_cue(("space",), "tempdb", "data file", "data files", "file size", "grow", "growth")
_cue(("log_reuse", "space"), "log full", "transaction log", "wal", "binlog", "9002", "log_reuse_wait")
_cue(("replication",), "replica", "replicas", "replication", "lag", "standby", "secondary", "failover")
_cue(("replication",), "availability group", "always on", "mirroring")
_cue(("errors",), "error", "errors", "exception", "exceptions", "failed", "failing", "failure", "failures")
_cue(("errors",), "crash", "crashed", "crashes", "5xx", "500s")
_cue(("latency",), "latency", "p95", "p99", "response time", "response times")
_cue(("resource_usage",), "cpu", "memory", "iops", "load", "throughput", "io", "i/o")
_cue(("forecast",), "run out", "running out", "forecast", "days left", "how long until")
_cue(("interfaces",), "interface", "interfaces", "link", "port", "crc", "packet", "packets", "bandwidth")
_cue(("interfaces",), "packet loss", "discards", "uplink")
_cue(("device_health",), "reboot", "rebooted", "reload", "uptime", "restarted")
_cue(("changes",), "change", "changed", "changes", "deploy", "deployed", "deployment", "release", "patch")
_cue(("changes",), "patched", "upgrade", "upgraded", "rollout", "maintenance")
_cue(("incidents",), "incident", "incidents", "ticket", "tickets", "on-call", "oncall", "on call", "paged")
_cue(("history",), "before", "again", "last time", "seen this", "previous", "history")

# words of a general health question: then every concern a DBA expects for that kind of entity
BROAD_WORDS = (
    "ok",
    "okay",
    "healthy",
    "health",
    "fine",
    "alright",
    "all right",
    "wrong",
    "status",
    "check",
    "problem",
    "problems",
    "issue",
    "issues",
    "going on",
    "anything",
    "happening",
)

# what "is X ok?" means for each kind of entity: what an experienced engineer would look at
EXPECTED_BY_KIND: dict[str, tuple[Concern, ...]] = {
    "sql_instance": (
        "blocking",
        "open_transactions",
        "long_running",
        "deadlocks",
        "waits",
        "regressions",
        "connections",
        "space",
        "log_reuse",
        "replication",
        "errors",
        "resource_usage",
    ),
    "device": ("interfaces", "device_health"),
    "metric_entity": ("resource_usage", "latency"),
    "log_entity": ("errors",),
    "ci": ("changes", "incidents"),
}

# a follow-up that only makes sense after an earlier answer ("what should I do about it?")
_FOLLOW_UP = re.compile(
    r"\b(about|with|fix|fixes|fixing|solve|resolve|handle|stop|restart|kill|explain|mean|means|cause[sd]?)"
    r"\s+(it|that|this|them|those|these|the same)\b"
    r"|\b(now what|what now|what next|and then what)\b"
    r"|^\s*(why|how|what about)\s+(so|that|this|it)\b"
    r"|\b(same|that|this)\s+(one|issue|problem|instance|server|host|thing)\b"
    r"|\b(you|we)\s+(just\s+)?(said|found|mentioned|showed)\b",
    re.I,
)


def _has(word: str, text: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None


def asked_concerns(request: str) -> list[str]:
    """The concerns a request's words name, in vocabulary order (empty for a general question)."""
    text = request.lower()
    found: set[str] = set()
    for word, concerns in CONCERN_WORDS.items():
        if _has(word, text):
            found.update(concerns)
    return [c for c in CONCERNS if c in found]


def is_broad(request: str) -> bool:
    """A general health question ("is the db ok?", "anything wrong?"), or one naming no concern."""
    text = request.lower()
    return any(_has(w, text) for w in BROAD_WORDS) or not asked_concerns(request)


def is_follow_up(request: str) -> bool:
    """Refers to an earlier answer ("what should I do about it?") rather than naming its subject."""
    return _FOLLOW_UP.search(request) is not None


def expected_concerns(kinds: list[str]) -> list[str]:
    """What a general health question covers for an entity of these kinds."""
    found = {c for k in kinds for c in EXPECTED_BY_KIND.get(k, ())}
    return [c for c in CONCERNS if c in found]


def wanted_concerns(scope: Scope, entity: Entity) -> list[str]:
    """The concerns the request asks about `entity`: what it names, and for a general question what is
    expected for the entity's kind (graphs/concerns.py)."""
    wanted = set(scope.concerns)
    if scope.broad:
        wanted |= set(expected_concerns(entity.kinds))
    return sorted(wanted)
