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


class WaitRow(_Strict):
    wait_type: str
    waiting_tasks_count: float | None = None
    wait_time_ms: float
    signal_wait_time_ms: float | None = None


class QueryStatRow(_Strict):
    query_hash: str
    execution_count: float | None = None
    total_cpu_ms: float | None = None
    total_elapsed_ms: float | None = None
    total_logical_reads: float | None = None
    avg_elapsed_ms: float | None = None
    baseline_avg_elapsed_ms: float | None = None
    last_execution_time: datetime | None = None
    sql_text: str | None = None

    @field_validator("query_hash", mode="before")
    @classmethod
    def _hash_as_text(cls, v: Any) -> str:
        return str(v)

    @field_validator("last_execution_time", mode="before")
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


class SqlInstanceWorld(_Strict):
    """One database instance as recorded.

    `unreachable` is an OpsCopilot extension of SPEC v1 (optional; files without it mean what SPEC
    says): the instance is known (configured, listed) but every read of it fails with this reason,
    e.g. "connection refused" or "circuit open after 3 timeouts", as a live backend's would."""

    engine: Engine
    sessions: list[SessionRow] = Field(default_factory=list)
    waits: list[WaitRow] = Field(default_factory=list)
    top_queries: list[QueryStatRow] = Field(default_factory=list)
    files: list[FileRow] = Field(default_factory=list)
    unreachable: str | None = Field(default=None, description="extension: every read fails with this reason")


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
