"""Wait statistics: what each engine's wait type is, the difference between two samples, and a profile of
wait time by cause.

Semantics per engine (the packs in tools/sql/packs produce these rows):
- SQL Server and MySQL/MariaDB wait statistics are cumulative since start; each row is the completed
  waits plus the waits still in progress (sys.dm_os_waiting_tasks; InnoDB's current row-lock waits), so
  the difference of two samples is exactly the time spent waiting between them. Without an earlier
  sample the profile is the totals since start, and says so.
- PostgreSQL keeps no wait statistics: a row is the active client sessions now waiting on an event and
  how long they have waited (lock waits, from pg_locks.waitstart on 14+) or run their statement (other
  events, which PostgreSQL does not time: an upper bound). Idle sessions and background processes are
  not counted.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from tools.world import Engine, WaitRow

CAUSE_WORDS: dict[str, str] = {
    "locks": "locks", "io": "data file I/O", "cpu": "CPU", "page_latch": "page latch contention",
    "tempdb_allocation": "tempdb allocation latch", "parallelism": "parallelism", "log": "WAL / log writes",
    "latch": "latch contention", "client": "waiting for the client", "memory": "memory grants",
    "network": "network", "sync_replica": "synchronous replica commit", "worker": "worker thread starvation",
    "checkpoint": "checkpoints", "other": "other",
}  # fmt: skip

# sp_BlitzFirst's ignorable waits (WaitStats_Categories, Ignorable = 1) and their newer additions: idle
# background tasks, queues waiting for work, sleeps. Families that are idle as a whole are prefixes.
_MSSQL_BENIGN_PREFIXES = (
    "SLEEP_", "XE_", "SQLTRACE_", "QDS_", "FT_IFTS", "BROKER_", "CLR_", "DBMIRROR_DBM_", "DBMIRROR_EVENTS",
    "DBMIRROR_WORKER", "DBMIRRORING_CMD", "WAIT_XTP", "PARALLEL_REDO_DRAIN", "PARALLEL_REDO_LOG",
    "PARALLEL_REDO_TRAN", "PARALLEL_REDO_WORKER",
)  # fmt: skip
_MSSQL_BENIGN = frozenset((
    "LAZYWRITER_SLEEP", "WAITFOR", "CHECKPOINT_QUEUE", "REQUEST_FOR_DEADLOCK_SEARCH", "DIRTY_PAGE_POLL",
    "SP_SERVER_DIAGNOSTICS_SLEEP", "LOGMGR_QUEUE", "ONDEMAND_TASK_QUEUE", "RESOURCE_QUEUE", "CHKPT",
    "SERVER_IDLE_CHECK", "KSOURCE_WAKEUP", "DISPATCHER_QUEUE_SEMAPHORE", "SOS_WORK_DISPATCHER",
    "HADR_CLUSAPI_CALL", "HADR_FABRIC_CALLBACK", "HADR_FILESTREAM_IOMGR_IOCOMPLETION", "HADR_LOGCAPTURE_WAIT",
    "HADR_NOTIFICATION_DEQUEUE", "HADR_TIMER_TASK", "HADR_WORK_QUEUE", "WAIT_FOR_RESULTS",
    "WAITFOR_TASKSHUTDOWN", "REDO_THREAD_PENDING_WORK", "UCS_SESSION_REGISTRATION", "MEMORY_ALLOCATION_EXT",
    "SNI_HTTP_ACCEPT", "VDI_CLIENT_OTHER", "PREEMPTIVE_HADR_LEASE_MECHANISM",
    "PREEMPTIVE_SP_SERVER_DIAGNOSTICS",
    "PREEMPTIVE_XE_DISPATCHER", "PREEMPTIVE_XE_GETTARGETSTATE", "PREEMPTIVE_OS_FLUSHFILEBUFFERS",
    "PWAIT_ALL_COMPONENTS_INITIALIZED", "PWAIT_DIRECTLOGCONSUMER_GETNEXT", "PWAIT_EXTENSIBILITY_CLEANUP_TASK",
    "PVS_PREALLOCATE", "AZURE_IMDS_VERSIONS", "FT_IFTSHC_MUTEX", "FT_IFTSISM_MUTEX", "BROKER_RECEIVE_WAITFOR",
))  # fmt: skip
_MSSQL_EXACT = {
    **dict.fromkeys(("IO_COMPLETION", "ASYNC_IO_COMPLETION", "BACKUPIO", "WRITE_COMPLETION"), "io"),
    **dict.fromkeys(("WRITELOG", "LOGBUFFER", "LOG_RATE_GOVERNOR", "LOGMGR_RESERVE_APPEND",
                     "POOL_LOG_RATE_GOVERNOR", "INSTANCE_LOG_RATE_GOVERNOR",
                     "HADR_THROTTLE_LOG_RATE_GOVERNOR"), "log"),
    **dict.fromkeys(("HADR_SYNC_COMMIT", "HADR_SYNCHRONIZING_THROTTLE"), "sync_replica"),
    **dict.fromkeys(("CXPACKET", "CXCONSUMER", "CXSYNC_PORT", "CXSYNC_CONSUMER", "EXCHANGE"), "parallelism"),
    "SOS_SCHEDULER_YIELD": "cpu",
    "THREADPOOL": "worker",
    **dict.fromkeys(("CMEMTHREAD", "RESOURCE_SEMAPHORE", "RESOURCE_SEMAPHORE_QUERY_COMPILE"), "memory"),
    "ASYNC_NETWORK_IO": "client",
}  # fmt: skip
_MSSQL_PREFIXES = (
    ("LCK_M_", "locks"), ("PAGEIOLATCH_", "io"), ("PAGELATCH_", "page_latch"), ("LATCH_", "latch"),
    ("RESOURCE_SEMAPHORE", "memory"), ("PREEMPTIVE_OS_", "other"),
)  # fmt: skip

# PostgreSQL IPC events by what they wait for (the rest of IPC is "other", never assumed parallelism)
_PG_IPC = {
    **dict.fromkeys(("BgWorkerShutdown", "BgWorkerStartup", "ExecuteGather", "ParallelFinish",
                     "ParallelBitmapScan", "ParallelCreateIndexScan", "BtreePage"), "parallelism"),
    "SyncRep": "sync_replica",
    "BufferIO": "io",
    **dict.fromkeys(("CheckpointDone", "CheckpointStart"), "checkpoint"),
    **dict.fromkeys(("ArchiveCommand", "ArchiveCleanupCommand", "BackupWaitWalArchive", "RestoreCommand",
                     "WalReceiverWaitStart", "WalReceiverExit"), "log"),
    **dict.fromkeys(("ProcArrayGroupUpdate", "XactGroupUpdate"), "latch"),
    "SafeSnapshot": "locks",
}  # fmt: skip
_PG_IPC_PREFIXES = (("Hash", "parallelism"), ("MessageQueue", "parallelism"))
_PG_TYPES = {"lock": "locks", "client": "client", "bufferpin": "latch", "wal": "log"}

# MySQL table-level events that contain the file I/O and row-lock waits beneath them: counting them
# would count those waits twice (and call a row-lock wait "table I/O")
MYSQL_OVERLAPPING = frozenset({"wait/io/table/sql/handler", "wait/lock/table/sql/handler"})
MYSQL_ROW_LOCK = "wait/lock/innodb/row_lock"  # the packs' row: Innodb_row_lock_time + current waits

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
    MYSQL_ROW_LOCK: "InnoDB row lock waits",
    "IPC:BufferIO": "waiting for another session's buffer I/O",
}
PAGE_LATCH_WORDS = "page latch contention (tempdb allocation pages or a last-page insert hot spot)"


def _engine_of(wait_type: str) -> Engine | None:
    """The engine a wait name's form belongs to, or None when the form alone does not say."""
    if wait_type.lower().startswith("wait/") or wait_type.lower() == "idle":
        return "mysql"
    return "postgresql" if ":" in wait_type or wait_type.upper() == "CPU" else None


def classify_wait(wait_type: str, engine: Engine | None = None) -> str | None:
    """The cause a wait type belongs to (a key of CAUSE_WORDS), or None for waits that are not counted:
    benign/idle waits (sp_BlitzFirst's ignorable list on SQL Server) and MySQL's table-handler events
    that contain other waits.

    A name's own form (`Type:Event`, `wait/...`) wins over `engine`; other names are read as `engine`'s,
    SQL Server's when none is given. Commits waiting for a synchronous replica (SQL Server HADR_SYNC_COMMIT,
    PostgreSQL IPC:SyncRep) are their own cause: the replica, not the local log disk, is slow. PAGELATCH_*
    is page latch contention: tempdb allocation pages or a hot page of a user table (the waiting sessions'
    wait_resource tells which)."""
    if wait_type.strip().lower() in ("syncrep", "ipc:syncrep"):
        return "sync_replica"
    engine = _engine_of(wait_type) or engine or "mssql"
    if engine == "mssql":
        w = wait_type.upper()
        if w in _MSSQL_BENIGN or w.startswith(_MSSQL_BENIGN_PREFIXES):
            return None
        return _MSSQL_EXACT.get(w) or next((c for p, c in _MSSQL_PREFIXES if w.startswith(p)), "other")
    if engine == "postgresql":
        return _classify_pg(wait_type)
    return _classify_mysql(wait_type.lower())


def _classify_pg(wait_type: str) -> str | None:
    kind, _, name = wait_type.partition(":")
    kind, name = kind.strip().lower(), name.strip()
    if kind == "cpu":
        return "cpu"
    if kind == "activity" or (kind == "timeout" and name != "SpinDelay"):
        return None
    if kind in ("lwlock", "io") and name.upper().startswith("WAL"):
        return "log"
    if kind == "ipc":
        return _PG_IPC.get(name) or next((c for p, c in _PG_IPC_PREFIXES if name.startswith(p)), "other")
    return {"lwlock": "latch", "io": "io", "timeout": "latch"}.get(kind) or _PG_TYPES.get(kind, "other")


def _classify_mysql(w: str) -> str | None:
    if w in MYSQL_OVERLAPPING:
        return None
    if w.startswith("idle") or "sleep" in w or w.endswith("cond_thread_cache"):
        return None
    if any(k in w for k in ("innodb_log_file", "redo", "binlog", "bin_log", "log_sys", "innodb/log_")):
        return "log"
    if w.startswith("wait/lock/"):
        return "locks"
    if w.startswith("wait/io/file/"):
        return "io"
    if w.startswith("wait/io/socket/"):
        return "client" if "client_connection" in w else "network"
    return "latch" if w.startswith("wait/synch/") else "other"


def wait_label(wait_type: str, cause: str) -> str:
    """A few words saying what a wait type means, e.g. 'buffer mapping latch' for LWLock:BufferMapping."""
    if wait_type in _LABELS or wait_type.upper() in _LABELS:
        return _LABELS.get(wait_type) or _LABELS[wait_type.upper()]
    if cause == "page_latch":
        return PAGE_LATCH_WORDS
    if cause == "latch" and wait_type.startswith("LWLock:"):
        name = wait_type.split(":", 1)[1]
        return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower() + " latch"
    return CAUSE_WORDS[cause]


# --- the difference of two samples ---------------------------------------------------------------

Basis = Literal["delta", "cumulative", "snapshot"]


class WaitDelta(BaseModel):
    """What the profile is computed from: per wait type, the time between two samples (or the totals)."""

    rows: list[WaitRow]
    basis: Basis
    interval_s: float | None = None
    reset: bool = False  # a counter went down between the samples (restart or cleared statistics)


def wait_delta(
    current: Sequence[WaitRow],
    earlier: Sequence[WaitRow] | None,
    interval_s: float | None,
    engine: Engine | None,
) -> WaitDelta:
    """Per wait type, current minus earlier. PostgreSQL rows are already a snapshot of now; a cumulative
    engine without an earlier sample keeps its totals since start (basis 'cumulative')."""
    if engine == "postgresql" or (engine is None and any(":" in w.wait_type for w in current)):
        return WaitDelta(rows=list(current), basis="snapshot")
    if earlier is None:
        return WaitDelta(rows=list(current), basis="cumulative")
    before = {w.wait_type: w for w in earlier}
    if any(w.wait_time_ms < before[w.wait_type].wait_time_ms for w in current if w.wait_type in before):
        return WaitDelta(rows=list(current), basis="cumulative", reset=True)
    rows = []
    for w in current:
        old = before.get(w.wait_type)
        ms = w.wait_time_ms - (old.wait_time_ms if old else 0.0)
        if ms <= 0:
            continue
        rows.append(
            WaitRow(
                wait_type=w.wait_type,
                waiting_tasks_count=_minus(w.waiting_tasks_count, old.waiting_tasks_count if old else 0.0),
                wait_time_ms=ms,
                signal_wait_time_ms=_minus(w.signal_wait_time_ms, old.signal_wait_time_ms if old else 0.0),
            )
        )
    return WaitDelta(rows=rows, basis="delta", interval_s=interval_s)


def _minus(now: float | None, then: float | None) -> float | None:
    return None if now is None else max(0.0, now - (then or 0.0))


# --- the profile ------------------------------------------------------------------------------------


class WaitShare(WaitRow):
    cause: str
    label: str
    share_pct: float  # of all counted wait time


class CauseShare(BaseModel):
    cause: str
    label: str
    wait_time_ms: float
    share_pct: float


class WaitProfile(BaseModel):
    engine: Engine | None = None
    basis: Basis = "cumulative"
    interval_s: float | None = None
    reset: bool = False
    total_wait_ms: float = 0.0  # counted waits only
    benign_wait_ms: float = 0.0
    benign_types: list[str] = Field(default_factory=list)  # benign, idle, or containing other waits
    waits: list[WaitShare] = Field(default_factory=list)  # largest first
    causes: list[CauseShare] = Field(default_factory=list)  # largest first
    dominant_cause: str | None = None
    dominant_share_pct: float = 0.0

    def per_second(self, cause: str) -> float | None:
        """Seconds of `cause` waits per second of the sample (sessions waiting on it at once, on average)."""
        if self.basis != "delta" or not self.interval_s:
            return None
        ms = next((c.wait_time_ms for c in self.causes if c.cause == cause), 0.0)
        return ms / 1000.0 / self.interval_s


def wait_profile(
    waits: Sequence[WaitRow],
    engine: Engine | None = None,
    *,
    earlier: Sequence[WaitRow] | None = None,
    interval_s: float | None = None,
) -> WaitProfile:
    """The difference from `earlier` (when given), benign waits dropped, then every wait type's and cause's
    share of the remaining wait time."""
    delta = wait_delta(waits, earlier, interval_s, engine)
    kept: list[tuple[WaitRow, str]] = []
    benign: list[WaitRow] = []
    for w in delta.rows:
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
        basis=delta.basis,
        interval_s=delta.interval_s,
        reset=delta.reset,
        total_wait_ms=total,
        benign_wait_ms=sum(w.wait_time_ms for w in benign),
        benign_types=[w.wait_type for w in benign],
        waits=shares,
        causes=causes,
        dominant_cause=top.cause if top else None,
        dominant_share_pct=top.share_pct if top else 0.0,
    )


# --- page latches: tempdb allocation pages or a hot page -------------------------------------------

PFS_INTERVAL, GAM_INTERVAL = 8088, 511232
_PAGE = re.compile(r"^\s*(?:PAGE:\s*)?(\d+):(\d+):(\d+)")


def allocation_page(resource: str | None) -> str | None:
    """'PFS', 'GAM' or 'SGAM' when a page latch resource 'db:file:page' is an allocation bitmap page."""
    m = _PAGE.match(resource or "")
    if m is None:
        return None
    page = int(m.group(3))
    if page == 1 or (page > 1 and page % PFS_INTERVAL == 0):
        return "PFS"
    if page == 2 or (page > 2 and (page - 2) % GAM_INTERVAL == 0):
        return "GAM"
    if page == 3 or (page > 3 and (page - 3) % GAM_INTERVAL == 0):
        return "SGAM"
    return None


def page_database_id(resource: str | None) -> int | None:
    m = _PAGE.match(resource or "")
    return int(m.group(1)) if m else None
