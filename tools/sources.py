"""Data-source interfaces: what every backend (replay now, live later) must answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from tools.world import (
    DeviceSample,
    Engine,
    FileRow,
    ItsmChange,
    ItsmIncident,
    LogRecord,
    PastIncident,
    QueryStatRow,
    Series,
    SessionRow,
    SnmpDevice,
    WaitRow,
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


@runtime_checkable
class SqlSource(Protocol):
    def instances(self) -> dict[str, Engine]: ...
    def sessions(self, instance: str) -> list[SessionRow]: ...
    def waits(self, instance: str) -> list[WaitRow]: ...
    def top_queries(self, instance: str) -> list[QueryStatRow]: ...
    def files(self, instance: str) -> list[FileRow]: ...


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
    ) -> list[LogRecord]: ...


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
    notes: list[str] = field(default_factory=list)


@dataclass
class ToolContext:
    """What a view tool may read: the sources and the investigation's time window."""

    sources: Sources
    now: datetime
    start: datetime  # the incident window: logs, sessions, tickets
    end: datetime
    history_start: datetime  # the longer look-back for baselines, trends and forecasts
    options: dict[str, Any] = field(default_factory=dict)  # per-run tool options, e.g. knowledge_min_score


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
