"""Data-source interfaces: what every backend (replay now, live later) must answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field

from tools.world import (
    DeadlockRow,
    DeviceSample,
    Engine,
    FileRow,
    ItsmChange,
    ItsmIncident,
    LogRecord,
    LogReuseRow,
    PastIncident,
    QueryStatRow,
    ReplicaRow,
    Series,
    ServerRow,
    SessionRow,
    SnmpDevice,
    WaitRow,
    WaitSamples,
)


class SourceError(RuntimeError):
    """A source could not answer (unreachable, timed out, circuit open). Becomes evidence, not a crash."""


class BackendError(SourceError):
    """A live backend could not answer; `status` is the HTTP status when there was one, `fix` what to do.

    `kind` is what counts against the backend's circuit: no answer (timeout, refused, TLS), or a 5xx;
    4xx and query errors are answers."""

    def __init__(
        self, message: str, *, fix: str = "", status: int | None = None, kind: str | None = None
    ) -> None:
        super().__init__(f"{message}; {fix}" if fix else message)
        self.fix = fix
        self.status = status
        self.kind = kind or ("server error" if status is not None and status >= 500 else None)


SQL_DATASETS = (
    "sessions", "waits", "top_queries", "files", "server", "log_reuse", "replicas", "deadlocks",
)  # fmt: skip


@runtime_checkable
class SqlSource(Protocol):
    def instances(self) -> dict[str, Engine]: ...
    def datasets(self, instance: str) -> set[str]:
        """The datasets this source can answer for `instance` (a recording holds only what it kept)."""
        ...

    def sessions(self, instance: str) -> list[SessionRow]: ...
    def waits(self, instance: str) -> list[WaitRow]: ...
    def wait_samples(self, instance: str) -> WaitSamples:
        """The current wait statistics and an earlier sample to subtract (cumulative engines)."""
        ...

    def top_queries(self, instance: str) -> list[QueryStatRow]: ...
    def files(self, instance: str) -> list[FileRow]: ...
    def server(self, instance: str) -> list[ServerRow]:
        """The instance-wide sample, then an earlier one when kept (for counters' deltas)."""
        ...

    def log_reuse(self, instance: str) -> list[LogReuseRow]: ...
    def replicas(self, instance: str) -> list[ReplicaRow]: ...
    def deadlocks(self, instance: str) -> list[DeadlockRow]: ...


class MessageCount(BaseModel):
    """One distinct message with how often it was logged in the window, and when first and last."""

    message: str
    count: int
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    severity: str | None = None  # the worst level seen with it


class LogSummary(BaseModel):
    """Aggregations over every matching document in a window (never only the latest lines)."""

    total: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    by_severity: dict[str, int] = Field(default_factory=dict)
    by_entity: dict[str, int] = Field(default_factory=dict)
    messages: list[MessageCount] = Field(default_factory=list)  # most frequent first
    other: int = 0  # matching documents not counted under `messages` (more distinct messages than asked)


@runtime_checkable
class LogSource(Protocol):
    def entities(self) -> set[str]: ...
    def search(
        self,
        *,
        entities: list[str] | None,
        start: datetime,
        end: datetime,
        min_severity: str = "debug",
        text: str | None = None,
        limit: int = 500,
        terms: list[str] | None = None,
    ) -> list[LogRecord]:
        """Documents in [start, end], at or above `min_severity`, naming an entity, containing `text`
        and any of `terms` (phrases, case-insensitive): the latest `limit`, oldest first."""
        ...

    def summarize(
        self,
        *,
        entities: list[str] | None,
        start: datetime,
        end: datetime,
        min_severity: str = "debug",
        terms: list[str] | None = None,
        size: int = 200,
    ) -> LogSummary:
        """Counts over every matching document (filters as `search`), computed by the backend:
        total, first/last, per level, per entity and the `size` most frequent messages."""
        ...


@runtime_checkable
class MetricSource(Protocol):
    def catalog(self) -> list[Series]:
        """Every known series with tags but without points (for entity matching)."""
        ...

    def series(
        self, *, match: dict[str, str] | None, start: datetime, end: datetime, measurement: str | None = None
    ) -> list[Series]: ...


@dataclass
class DevicePoll:
    """Two samples of a device, `age_s` apart, from which rates are derived."""

    device: str
    current: SnmpDevice
    previous: DeviceSample | None = None
    age_s: float | None = None


@runtime_checkable
class SnmpSource(Protocol):
    def devices(self) -> dict[str, str]:
        """Device name -> address."""
        ...

    def poll(self, device: str) -> DevicePoll: ...


@runtime_checkable
class ItsmSource(Protocol):
    def configuration_items(self) -> set[str]: ...
    def incidents(self, *, ci: str | None = None, open_only: bool = True) -> list[ItsmIncident]: ...
    def changes(self, *, start: datetime, end: datetime, ci: str | None = None) -> list[ItsmChange]: ...


@dataclass
class KnowledgeHit:
    """A retrieved past incident or runbook (kind), its similarity (0-1) and link to the source record."""

    incident: PastIncident
    score: float
    kind: str = "incident"  # incident | runbook
    url: str | None = None
    steps: list[str] = field(default_factory=list)  # a runbook's checklist
    matched: list[str] = field(default_factory=list)  # names in the query found verbatim in it
    codes: list[str] = field(default_factory=list)  # of those, codes: error numbers, wait types, ids


@runtime_checkable
class KnowledgeSource(Protocol):
    def size(self) -> int: ...
    def services(self) -> set[str]: ...
    def search(self, query: str, k: int = 3) -> list[KnowledgeHit]: ...


@dataclass
class Sources:
    """The bundle of backends one investigation reads from. Any may be absent."""

    sql: SqlSource | None = None
    logs: LogSource | None = None
    metrics: MetricSource | None = None
    snmp: SnmpSource | None = None
    itsm: ItsmSource | None = None
    knowledge: KnowledgeSource | None = None
    label: str = "replay"
    aliases: dict[str, list[str]] = field(default_factory=dict)  # service -> what it runs on (settings)


@dataclass
class ToolContext:
    """What a view tool may read: the sources and the investigation's time window."""

    sources: Sources
    now: datetime
    start: datetime  # the incident window: logs, sessions, tickets
    end: datetime
    history_start: datetime  # the longer look-back for baselines, trends and forecasts
    options: dict[str, Any] = field(default_factory=dict)  # per-run tool options, e.g. knowledge_min_score
    # What the request asked for (graphs/request.py): explicit search terms, the intent, the window
    # in words ("2026-08-02 13:15–14:15 UTC"). Empty for a plain "what is wrong now".
    terms: list[str] = field(default_factory=list)
    intent: list[str] = field(default_factory=list)
    window_label: str = ""
    lead_start: datetime | None = None  # where to look for causes that came before the window (changes)
    # what this run already read, so that tools sharing a dataset read it once (e.g. sessions)
    memo: dict[tuple[str, ...], Any] = field(default_factory=dict)


class SourceCheck(BaseModel):
    """One row of `opscopilot doctor`: can this source answer, and if not, what to fix."""

    source: str  # e.g. "sql:pg-prod-01", "elastic:logs", "snmp:core-sw-01"
    kind: str  # sql | logs | metrics | snmp | itsm | knowledge
    target: str  # host:port or URL, never with credentials
    reachable: bool
    authenticated: bool | None = None
    permissions_ok: bool | None = None
    latency_ms: float | None = None
    circuit: str | None = None  # closed | open | half-open
    detail: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.reachable and self.authenticated is not False and self.permissions_ok is not False


def public_url(url: str) -> str:
    """The URL without user:password, query or fragment: a SourceCheck's target, or a message's."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@runtime_checkable
class Checkable(Protocol):
    """A live backend that can check itself for `opscopilot doctor`."""

    def doctor(self) -> list[SourceCheck]: ...
