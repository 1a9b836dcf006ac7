"""Wait statistics: which cause each engine's wait type belongs to, and a profile of wait time by cause."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, Field

from tools.world import Engine, WaitRow

CAUSE_WORDS: dict[str, str] = {
    "locks": "locks", "io": "data file I/O", "cpu": "CPU", "tempdb_allocation": "tempdb allocation latch",
    "parallelism": "parallelism", "log": "WAL / log writes", "latch": "latch contention",
    "client": "idle sessions waiting for the client", "memory": "memory grants", "network": "network",
    "sync_replica": "synchronous replica commit", "other": "other",
}  # fmt: skip
_MSSQL_BENIGN_PREFIXES = (
    "BROKER_", "XE_", "SQLTRACE_", "SLEEP_", "HADR_FILESTREAM_IOMGR", "QDS_", "FT_IFTS", "DBMIRROR",
    "PARALLEL_REDO", "WAIT_XTP", "PREEMPTIVE_XE", "CLR_", "PWAIT_",
)  # fmt: skip
_MSSQL_BENIGN = frozenset((
    "LAZYWRITER_SLEEP", "WAITFOR", "CHECKPOINT_QUEUE", "REQUEST_FOR_DEADLOCK_SEARCH", "DIRTY_PAGE_POLL",
    "SP_SERVER_DIAGNOSTICS_SLEEP", "LOGMGR_QUEUE", "ONDEMAND_TASK_QUEUE", "RESOURCE_QUEUE", "CHKPT",
    "SERVER_IDLE_CHECK", "KSOURCE_WAKEUP", "DISPATCHER_QUEUE_SEMAPHORE", "SOS_WORK_DISPATCHER",
    "HADR_CLUSAPI_CALL", "HADR_LOGCAPTURE_WAIT", "HADR_NOTIFICATION_DEQUEUE", "HADR_TIMER_TASK",
    "HADR_WORK_QUEUE", "WAIT_FOR_RESULTS", "WAITFOR_TASKSHUTDOWN", "REDO_THREAD_PENDING_WORK",
    "UCS_SESSION_REGISTRATION", "MEMORY_ALLOCATION_EXT", "SNI_HTTP_ACCEPT", "VDI_CLIENT_OTHER",
))  # fmt: skip
_MSSQL_EXACT = {
    **dict.fromkeys(("IO_COMPLETION", "ASYNC_IO_COMPLETION", "BACKUPIO", "WRITE_COMPLETION"), "io"),
    **dict.fromkeys(("WRITELOG", "LOGBUFFER", "LOG_RATE_GOVERNOR", "LOGMGR_RESERVE_APPEND"), "log"),
    **dict.fromkeys(("HADR_SYNC_COMMIT", "HADR_SYNCHRONIZING_THROTTLE"), "sync_replica"),
    **dict.fromkeys(("CXPACKET", "CXCONSUMER", "CXSYNC_PORT", "CXSYNC_CONSUMER", "EXCHANGE"), "parallelism"),
    **dict.fromkeys(("SOS_SCHEDULER_YIELD", "THREADPOOL"), "cpu"),
    **dict.fromkeys(("CMEMTHREAD", "RESOURCE_SEMAPHORE", "RESOURCE_SEMAPHORE_QUERY_COMPILE"), "memory"),
    "ASYNC_NETWORK_IO": "client",
}
_MSSQL_PREFIXES = (
    ("LCK_M_", "locks"), ("PAGEIOLATCH_", "io"), ("PAGELATCH_", "tempdb_allocation"), ("LATCH_", "latch"),
    ("RESOURCE_SEMAPHORE", "memory"), ("PREEMPTIVE_OS_", "other"),
)  # fmt: skip
_PG_TYPES = {"lock": "locks", "client": "client", "bufferpin": "latch", "ipc": "parallelism", "wal": "log"}
_LABELS = {
    "ASYNC_NETWORK_IO": "application slow to read results",
    "SOS_SCHEDULER_YIELD": "CPU pressure",
    "THREADPOOL": "worker thread starvation",
    "CPU": "on CPU",
    "CPU:user": "on CPU",
    "HADR_SYNC_COMMIT": "synchronous replica commit",
    "HADR_SYNCHRONIZING_THROTTLE": "synchronous replica catching up",
    "IPC:SyncRep": "synchronous standby commit",
    "SyncRep": "synchronous standby commit",
    "LOGMGR_RESERVE_APPEND": "waiting for transaction log space",
    "LOG_RATE_GOVERNOR": "log rate governor",
    "LWLock:CheckpointerComm": "checkpointer request queue latch",
}


def _engine_of(wait_type: str) -> Engine | None:
    """The engine a wait name's form belongs to, or None when the form alone does not say."""
    if wait_type.lower().startswith("wait/") or wait_type.lower() == "idle":
        return "mysql"
    return "postgresql" if ":" in wait_type or wait_type.upper() == "CPU" else None


def classify_wait(wait_type: str, engine: Engine | None = None) -> str | None:
    """The cause a wait type belongs to (a key of CAUSE_WORDS), or None for benign/idle waits.

    A name's own form (`Type:Event`, `wait/...`) wins over `engine`; other names are read as `engine`'s,
    SQL Server's when none is given. Commits waiting for a synchronous replica (SQL Server HADR_SYNC_COMMIT,
    PostgreSQL IPC:SyncRep) are their own cause: the replica, not the local log disk, is slow."""
    if wait_type.strip().lower() in ("syncrep", "ipc:syncrep"):
        return "sync_replica"
    engine = _engine_of(wait_type) or engine or "mssql"
    if engine == "mssql":
        w = wait_type.upper()
        if w in _MSSQL_BENIGN or w.startswith(_MSSQL_BENIGN_PREFIXES):
            return None
        return _MSSQL_EXACT.get(w) or next((c for p, c in _MSSQL_PREFIXES if w.startswith(p)), "other")
    if engine == "postgresql":
        kind, _, name = wait_type.partition(":")
        kind, name = kind.strip().lower(), name.strip()
        if kind == "cpu":
            return "cpu"
        if kind == "activity" or (kind == "timeout" and name != "SpinDelay"):
            return None
        if kind in ("lwlock", "io") and name.upper().startswith("WAL"):
            return "log"
        return {"lwlock": "latch", "io": "io", "timeout": "latch"}.get(kind) or _PG_TYPES.get(kind, "other")
    w = wait_type.lower()  # mysql performance_schema instruments
    if w.startswith("idle") or "sleep" in w or w.endswith("cond_thread_cache"):
        return None
    if any(k in w for k in ("innodb_log_file", "redo", "binlog", "bin_log", "log_sys", "innodb/log_")):
        return "log"
    if w.startswith("wait/lock/"):
        return "locks"
    if w.startswith(("wait/io/file/", "wait/io/table/")):
        return "io"
    if w.startswith("wait/io/socket/"):
        return "client" if "client_connection" in w else "network"
    return "latch" if w.startswith("wait/synch/") else "other"


def wait_label(wait_type: str, cause: str) -> str:
    """A few words saying what a wait type means, e.g. 'buffer mapping latch' for LWLock:BufferMapping."""
    if wait_type in _LABELS or wait_type.upper() in _LABELS:
        return _LABELS.get(wait_type) or _LABELS[wait_type.upper()]
    if cause == "latch" and wait_type.startswith("LWLock:"):
        name = wait_type.split(":", 1)[1]
        return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower() + " latch"
    return CAUSE_WORDS[cause]


class WaitShare(WaitRow):
    cause: str
    label: str
    share_pct: float  # of all non-benign wait time


class CauseShare(BaseModel):
    cause: str
    label: str
    wait_time_ms: float
    share_pct: float


class WaitProfile(BaseModel):
    engine: Engine | None = None
    total_wait_ms: float = 0.0  # non-benign only
    benign_wait_ms: float = 0.0
    benign_types: list[str] = Field(default_factory=list)
    waits: list[WaitShare] = Field(default_factory=list)  # largest first
    causes: list[CauseShare] = Field(default_factory=list)  # largest first
    dominant_cause: str | None = None
    dominant_share_pct: float = 0.0


def wait_profile(waits: Sequence[WaitRow], engine: Engine | None = None) -> WaitProfile:
    """Drop benign waits, then give every wait type and cause its share of the remaining wait time."""
    kept: list[tuple[WaitRow, str]] = []
    benign: list[WaitRow] = []
    for w in waits:
        cause = classify_wait(w.wait_type, engine)
        if cause is None:
            benign.append(w)
        else:
            kept.append((w, cause))
    total = sum(w.wait_time_ms for w, _ in kept)

    def pct(ms: float) -> float:
        return round(100.0 * ms / total, 2) if total > 0 else 0.0

    shares = [
        WaitShare(**w.model_dump(), cause=c, label=wait_label(w.wait_type, c), share_pct=pct(w.wait_time_ms))
        for w, c in sorted(kept, key=lambda wc: (-wc[0].wait_time_ms, wc[0].wait_type))
    ]
    by_cause: dict[str, float] = defaultdict(float)
    for w, c in kept:
        by_cause[c] += w.wait_time_ms
    causes = [
        CauseShare(cause=c, label=CAUSE_WORDS[c], wait_time_ms=ms, share_pct=pct(ms))
        for c, ms in sorted(by_cause.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    top = causes[0] if causes and total > 0 else None
    return WaitProfile(
        engine=engine,
        total_wait_ms=total,
        benign_wait_ms=sum(w.wait_time_ms for w in benign),
        benign_types=[w.wait_type for w in benign],
        waits=shares,
        causes=causes,
        dominant_cause=top.cause if top else None,
        dominant_share_pct=top.share_pct if top else 0.0,
    )
