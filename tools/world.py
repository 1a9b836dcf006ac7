"""Typed records of the monitored estate (SPEC v1 datasets), shared by live and replay backends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Engine = Literal["mssql", "postgresql", "mysql"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_ts(value: Any) -> datetime:
    """Parse an ISO-8601 timestamp (``Z`` allowed) into an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


BlockerKind = Literal[
    "session",  # an ordinary session: the one that can be asked to commit, or be killed
    "prepared_transaction",  # PostgreSQL PREPARE TRANSACTION / MySQL XA PREPARE: no session to kill
    "orphaned_distributed_transaction",  # SQL Server -2: an in-doubt DTC transaction with no session
    "deferred_recovery_transaction",  # SQL Server -3: a transaction whose rollback was deferred
    "latch_owner_unknown",  # SQL Server -4 / -5: a latch whose owner the engine does not track
    "unknown",  # the engine says the session waits but not on whom (e.g. an uninstrumented metadata lock)
]


class Blocker(_Strict):
    """One holder of what a waiting session needs (every blocker of a waiter is kept)."""

    session_id: int | None = None  # None when the blocker is not a session
    kind: BlockerKind = "session"
    name: str | None = None  # a prepared transaction's gid, a DTC unit of work, a note
    lock_mode: str | None = None  # the mode the waiter asks for (U, ShareLock, X, SHARED_WRITE)
    held_mode: str | None = None  # the mode the blocker holds, where the engine says
    resource: str | None = None  # what is locked: table, index, key, row, metadata object
    wait_time_ms: float | None = None  # how long the waiter has waited on this blocker
    since: str | None = None  # ISO time the blocker began (a prepared transaction's prepare time)


class SessionRow(_Strict):
    session_id: int
    status: str | None = None
    login_name: str | None = None
    host_name: str | None = None
    program_name: str | None = None
    database_name: str | None = None
    command: str | None = None
    wait_type: str | None = None
    wait_time_ms: float | None = None
    wait_resource: str | None = None
    blocking_session_id: int | None = None
    cpu_time_ms: float | None = None
    logical_reads: float | None = None
    elapsed_ms: float | None = None
    open_transaction_count: int | None = None
    sql_text: str | None = None
    login_time: str | None = None  # when the session started (ISO-8601): with the id, its identity
    # every blocker with lock mode and object (None: only blocking_session_id was recorded)
    blocked_by: list[Blocker] | None = None
    transaction_ms: float | None = None  # how long its open transaction has been open
    snapshot_ms: float | None = None  # how long it has held a row-version snapshot (version store, xmin)
    xmin_age: int | None = None  # PostgreSQL: transactions since its snapshot's xmin (holds back vacuum)
    tempdb_mb: float | None = None  # SQL Server: tempdb space its objects and tasks hold
    memory_requested_mb: float | None = None  # SQL Server: query memory grant asked for
    memory_granted_mb: float | None = None  # ... granted (None while it waits for the grant)
    memory_grant_wait_ms: float | None = None  # ... how long it has waited for the grant


class WaitRow(_Strict):
    wait_type: str
    waiting_tasks_count: float | None = None
    wait_time_ms: float
    signal_wait_time_ms: float | None = None


class QueryStatRow(_Strict):
    query_hash: str
    database_name: str | None = None
    execution_count: float | None = None
    total_cpu_ms: float | None = None
    total_elapsed_ms: float | None = None
    total_logical_reads: float | None = None
    avg_elapsed_ms: float | None = None
    baseline_avg_elapsed_ms: float | None = None
    last_execution_time: datetime | None = None
    sql_text: str | None = None
    plan_id: str | None = None  # the plan in use now (Query Store plan_id, or the plan cache's)
    plans: int | None = None  # plans of this query seen in the window
    baseline_plan_id: str | None = None  # the plan most used in the baseline period
    plan_changed_at: datetime | None = None  # when the current plan first ran, if it replaced another
    baseline_source: str | None = None  # where the baseline comes from, or why there is none

    @field_validator("query_hash", "plan_id", "baseline_plan_id", mode="before")
    @classmethod
    def _hash_as_text(cls, v: Any) -> str | None:
        return None if v is None else str(v)

    @field_validator("last_execution_time", "plan_changed_at", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> datetime | None:
        return None if v in (None, "") else parse_ts(v)


class FileRow(_Strict):
    database_name: str
    file_name: str
    type: Literal["data", "log"]
    size_mb: float
    used_mb: float | None = None
    max_size_mb: float | None = None
    volume_free_mb: float | None = None


class WaitSample(_Strict):
    """An earlier sample of cumulative wait statistics, `age_s` seconds before the current one."""

    age_s: float = Field(gt=0)
    waits: list[WaitRow] = Field(default_factory=list)


class WaitSamples(BaseModel):
    """The current wait statistics and, when one was taken, an earlier sample to subtract."""

    current: list[WaitRow] = Field(default_factory=list)
    earlier: list[WaitRow] | None = None
    interval_s: float | None = None  # seconds between the earlier and the current sample


class ServerRow(_Strict):
    """One instance-wide sample: limits, saturation and cumulative counters (None = not read)."""

    sampled_at: datetime | None = None  # the server's clock, for deltas between two samples
    platform: str | None = None  # SQL Server, Azure SQL Database, Azure SQL Managed Instance, PostgreSQL...
    version: str | None = None
    started_at: datetime | None = None  # counters below are since then
    in_recovery: bool | None = None  # a standby / readable secondary
    connections: int | None = None  # client connections now
    max_connections: int | None = None
    reserved_connections: int | None = None  # slots only superusers may use
    active_connections: int | None = None  # connections running a statement now
    max_used_connections: int | None = None  # the high-water mark since start
    refused_connections: float | None = None  # cumulative: connections refused at the limit
    workers: int | None = None  # SQL Server worker threads in use
    max_workers: int | None = None
    queued_tasks: int | None = None  # tasks waiting for a worker thread (THREADPOOL)
    deadlocks: float | None = None  # cumulative since start
    memory_grants_pending: int | None = None
    memory_grants_outstanding: int | None = None
    temp_spills: float | None = None  # cumulative: PostgreSQL temp files, MySQL on-disk temp tables
    temp_spill_mb: float | None = None  # cumulative PostgreSQL temp bytes
    sort_spills: float | None = None  # cumulative MySQL sort merge passes
    version_store_mb: float | None = None  # SQL Server tempdb version store
    history_list_length: int | None = None  # InnoDB undo records not yet purged
    xid_age: int | None = None  # PostgreSQL: the oldest database's age(datfrozenxid)
    xid_age_database: str | None = None
    mxid_age: int | None = None  # PostgreSQL: the oldest database's mxid_age(datminmxid)
    freeze_max_age: int | None = None  # autovacuum_freeze_max_age: anti-wraparound vacuum starts here
    prepared_transactions: int | None = None
    oldest_prepared_at: datetime | None = None
    oldest_prepared_gid: str | None = None

    @field_validator("sampled_at", "started_at", "oldest_prepared_at", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> datetime | None:
        return None if v in (None, "") else parse_ts(v)


class LogReuseRow(_Strict):
    """Why a transaction log / WAL / binlog cannot be reused or removed, and how much it holds."""

    log: Literal["transaction log", "wal", "binlog", "redo"]
    database_name: str | None = None  # None for an instance-wide log (WAL, binlog, redo)
    holder: str | None = None  # what keeps it: a replication slot, the archiver, a database's log
    reason: str | None = None  # log_reuse_wait_desc, "inactive slot", "archive_command failing"...
    size_mb: float | None = None
    used_mb: float | None = None  # retained / in use
    limit_mb: float | None = None  # what it may grow to (max size, max_slot_wal_keep_size...)
    active: bool | None = None  # a slot's consumer is connected
    since: datetime | None = None  # e.g. the archiver's last failure, the oldest binlog
    detail: str | None = None

    @field_validator("since", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> datetime | None:
        return None if v in (None, "") else parse_ts(v)


class ReplicaRow(_Strict):
    """One replica link: an AG database replica, a streaming standby, a replication channel."""

    name: str  # the replica, standby (application_name) or channel
    kind: Literal["availability_group", "streaming", "replication_channel"]
    role: Literal["primary", "secondary"] | None = None  # the role of the server this row describes
    local: bool = False  # this row describes the server the copilot is connected to
    group_name: str | None = None  # the availability group
    database_name: str | None = None
    state: str | None = None  # SYNCHRONIZED, streaming, Yes/No...
    synchronous: bool | None = None
    connected: bool | None = None
    lag_s: float | None = None  # how far behind, in seconds (replay lag, Seconds_Behind_Master)
    send_queue_mb: float | None = None  # log not yet sent (AG log_send_queue, WAL not yet flushed)
    redo_queue_mb: float | None = None  # log received but not yet applied
    last_error: str | None = None


class DeadlockParty(_Strict):
    session_id: int | None = None
    victim: bool = False
    login_name: str | None = None
    host_name: str | None = None
    database_name: str | None = None
    sql_text: str | None = None
    holds: str | None = None  # the lock it held
    waits_for: str | None = None  # the lock it waited for


class DeadlockRow(_Strict):
    """A deadlock the engine itself recorded (system_health, LATEST DETECTED DEADLOCK)."""

    occurred_at: datetime | None = None
    parties: list[DeadlockParty] = Field(default_factory=list)
    source: str | None = None  # where it was read

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> datetime | None:
        return None if v in (None, "") else parse_ts(v)


class SqlInstanceWorld(_Strict):
    """One database instance as recorded. The later dataset fields are optional: None means not recorded.

    `unreachable` is an OpsCopilot extension of SPEC v1 (optional; files without it mean what SPEC
    says): the instance is known (configured, listed) but every read of it fails with this reason,
    e.g. "connection refused" or "circuit open after 3 timeouts", as a live backend's would."""

    engine: Engine
    sessions: list[SessionRow] = Field(default_factory=list)
    waits: list[WaitRow] = Field(default_factory=list)
    top_queries: list[QueryStatRow] = Field(default_factory=list)
    files: list[FileRow] = Field(default_factory=list)
    unreachable: str | None = Field(default=None, description="extension: every read fails with this reason")
    waits_earlier: WaitSample | None = None  # cumulative waits sampled before `waits`
    server: ServerRow | None = None
    server_earlier: ServerRow | None = None  # an earlier sample, for counters' deltas
    log_reuse: list[LogReuseRow] | None = None
    replicas: list[ReplicaRow] | None = None
    deadlocks: list[DeadlockRow] | None = None


Level = Literal["debug", "info", "warning", "error", "critical"]


class LogRecord(BaseModel):
    """One log document as stored in Elastic; extra shipper fields are kept in `extra`."""

    model_config = ConfigDict(extra="allow")

    timestamp: datetime
    index: str | None = None
    instance_name: str | None = None
    host: str | None = None
    severity: Level = "info"
    log_category: str | None = None
    message: str

    @field_validator("timestamp", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> datetime:
        return parse_ts(v)

    @field_validator("severity", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> str:
        return str(v).lower() if v is not None else "info"

    @property
    def entity(self) -> str:
        return self.instance_name or self.host or ""


class Point(BaseModel):
    ts: datetime
    value: float


class Series(_Strict):
    measurement: str
    tags: dict[str, str] = Field(default_factory=dict)
    field: str
    unit: str | None = None
    points: list[tuple[datetime, float]] = Field(default_factory=list)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_as_text(cls, v: Any) -> dict[str, str]:
        return {str(k): str(val) for k, val in (v or {}).items()}

    @field_validator("points", mode="before")
    @classmethod
    def _points(cls, v: Any) -> list[tuple[datetime, float]]:
        out = []
        for i, p in enumerate(v or []):
            if not isinstance(p, list | tuple) or len(p) != 2:
                raise ValueError(f"point {i} must be [timestamp, value], got {p!r}")
            out.append((parse_ts(p[0]), float(p[1])))
        return sorted(out, key=lambda tv: tv[0])

    @property
    def label(self) -> str:
        tags = ",".join(f"{k}={v}" for k, v in sorted(self.tags.items()))
        return f"{self.measurement}.{self.field}{{{tags}}}"


OperStatus = Literal["up", "down", "testing", "unknown", "dormant", "notPresent", "lowerLayerDown"]


class Interface(_Strict):
    ifIndex: int
    ifDescr: str
    ifAdminStatus: OperStatus = "up"
    ifOperStatus: OperStatus = "up"
    ifSpeed: float | None = None
    ifInOctets: float | None = None
    ifOutOctets: float | None = None
    ifInErrors: float | None = None
    ifOutErrors: float | None = None
    ifInDiscards: float | None = None


class DeviceSample(_Strict):
    interfaces: list[Interface] = Field(default_factory=list)
    sysUpTime: float | None = None


class SnmpDevice(_Strict):
    address: str
    sysName: str | None = None
    sysDescr: str | None = None
    sysUpTime: float | None = None
    interfaces: list[Interface] = Field(default_factory=list)
    previous: DeviceSample | None = None
    previous_age_s: float | None = None


class ItsmIncident(_Strict):
    number: str
    short_description: str
    state: str | None = None
    priority: str | None = None
    cmdb_ci: str | None = None
    opened_at: datetime | None = None
    assignment_group: str | None = None

    @field_validator("opened_at", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> datetime | None:
        return None if v in (None, "") else parse_ts(v)


class ItsmChange(_Strict):
    number: str
    short_description: str
    state: str | None = None
    cmdb_ci: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    risk: str | None = None

    @field_validator("start_date", "end_date", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> datetime | None:
        return None if v in (None, "") else parse_ts(v)


class ItsmWorld(_Strict):
    incidents: list[ItsmIncident] = Field(default_factory=list)
    changes: list[ItsmChange] = Field(default_factory=list)


class PastIncident(_Strict):
    id: str
    title: str
    occurred_at: datetime | None = None
    services: list[str] = Field(default_factory=list)
    symptoms: str = ""
    root_cause: str = ""
    resolution: str = ""
    tags: list[str] = Field(default_factory=list)

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> datetime | None:
        return None if v in (None, "") else parse_ts(v)

    @property
    def document(self) -> str:
        """The text that is embedded for retrieval."""
        return (
            f"{self.title}. Services: {', '.join(self.services)}. Symptoms: {self.symptoms}. "
            f"Root cause: {self.root_cause}. Resolution: {self.resolution}. Tags: {', '.join(self.tags)}"
        )


class World(_Strict):
    """The state of the monitored estate at the scenario clock (SPEC v1 `world`)."""

    sql: dict[str, SqlInstanceWorld] = Field(default_factory=dict)
    logs: list[LogRecord] = Field(default_factory=list)
    metrics: list[Series] = Field(default_factory=list)
    snmp: dict[str, SnmpDevice] = Field(default_factory=dict)
    itsm: ItsmWorld = Field(default_factory=ItsmWorld)
    past_incidents: list[PastIncident] = Field(default_factory=list)
