"""Replay backends: every data-source interface answered from a scenario's recorded world."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tools.sources import DevicePoll, KnowledgeSource, LogSummary, MessageCount, SourceError, Sources
from tools.world import (
    DeadlockRow,
    Engine,
    FileRow,
    ItsmChange,
    ItsmIncident,
    LogRecord,
    LogReuseRow,
    QueryStatRow,
    ReplicaRow,
    Series,
    ServerRow,
    SessionRow,
    SqlInstanceWorld,
    WaitRow,
    WaitSamples,
    World,
)

SEVERITY_ORDER = {"debug": 0, "info": 1, "warning": 2, "error": 3, "critical": 4}
CLOSED_STATES = {"closed", "resolved", "cancelled", "canceled", "done", "7", "6"}


class ReplaySql:
    """SQL instances as recorded: each dataset is served verbatim; one that was not recorded is an error
    ("not recorded"), never an empty answer that would read as healthy."""

    def __init__(self, sql: dict[str, SqlInstanceWorld]) -> None:
        self._sql = sql

    def _instance(self, instance: str) -> SqlInstanceWorld:
        try:
            found = self._sql[instance]
        except KeyError:
            raise SourceError(f"no SQL instance named {instance!r} in the recorded world") from None
        if found.unreachable:  # recorded as unreadable: fail like the live backend did
            raise SourceError(f"{instance} unreachable: {found.unreachable}")
        return found

    def _recorded(self, instance: str, dataset: str) -> Any:
        value = getattr(self._instance(instance), dataset)
        if value is None:
            raise SourceError(f"{dataset} of {instance} was not recorded in this world")
        return value

    def instances(self) -> dict[str, Engine]:
        return {name: inst.engine for name, inst in self._sql.items()}

    def datasets(self, instance: str) -> set[str]:
        """The four original datasets always (an empty list was recorded as empty), the later ones when
        the world has them."""
        world = self._instance(instance)
        optional = ("server", "log_reuse", "replicas", "deadlocks")
        return {"sessions", "waits", "top_queries", "files"} | {
            d for d in optional if getattr(world, d) is not None
        }

    def sessions(self, instance: str) -> list[SessionRow]:
        return list(self._instance(instance).sessions)

    def waits(self, instance: str) -> list[WaitRow]:
        return list(self._instance(instance).waits)

    def wait_samples(self, instance: str) -> WaitSamples:
        world = self._instance(instance)
        earlier = world.waits_earlier
        return WaitSamples(
            current=list(world.waits),
            earlier=list(earlier.waits) if earlier else None,
            interval_s=earlier.age_s if earlier else None,
        )

    def top_queries(self, instance: str) -> list[QueryStatRow]:
        return list(self._instance(instance).top_queries)

    def files(self, instance: str) -> list[FileRow]:
        return list(self._instance(instance).files)

    def server(self, instance: str) -> list[ServerRow]:
        current: ServerRow = self._recorded(instance, "server")
        earlier = self._instance(instance).server_earlier
        return [current, earlier] if earlier else [current]

    def log_reuse(self, instance: str) -> list[LogReuseRow]:
        return list(self._recorded(instance, "log_reuse"))

    def replicas(self, instance: str) -> list[ReplicaRow]:
        return list(self._recorded(instance, "replicas"))

    def deadlocks(self, instance: str) -> list[DeadlockRow]:
        return list(self._recorded(instance, "deadlocks"))


class ReplayLogs:
    """Log documents as recorded, filtered like an Elastic query would filter them."""

    def __init__(self, records: list[LogRecord]) -> None:
        self._records = sorted(records, key=lambda r: r.timestamp)

    def entities(self) -> set[str]:
        return {r.entity for r in self._records if r.entity}

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
        out = self._matching(entities, start, end, min_severity, text, terms)
        return out[-limit:] if limit > 0 else []

    def _matching(
        self,
        entities: list[str] | None,
        start: datetime,
        end: datetime,
        min_severity: str,
        text: str | None,
        terms: list[str] | None,
    ) -> list[LogRecord]:
        floor = SEVERITY_ORDER.get(min_severity, 0)
        wanted = {e.lower() for e in entities} if entities else None
        needle = text.lower() if text else None
        anyof = [t.lower() for t in terms or [] if t]
        out = []
        for r in self._records:
            if not (start <= r.timestamp <= end) or SEVERITY_ORDER.get(r.severity, 1) < floor:
                continue
            if wanted is not None and not _log_mentions(r, wanted):
                continue
            message = r.message.lower()
            if needle and needle not in message:
                continue
            if anyof and not any(t in message for t in anyof):
                continue
            out.append(r)
        return out

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
        """Counts over every matching record, as the live backend's aggregations compute them."""
        found = self._matching(entities, start, end, min_severity, None, terms)
        summary = LogSummary(total=len(found))
        by_message: dict[str, MessageCount] = {}
        for r in found:
            summary.first_seen = summary.first_seen or r.timestamp
            summary.last_seen = r.timestamp
            summary.by_severity[r.severity] = summary.by_severity.get(r.severity, 0) + 1
            if r.entity:
                summary.by_entity[r.entity] = summary.by_entity.get(r.entity, 0) + 1
            m = by_message.setdefault(
                r.message, MessageCount(message=r.message, count=0, first_seen=r.timestamp)
            )
            m.count += 1
            m.last_seen = r.timestamp
            if m.severity is None or SEVERITY_ORDER[r.severity] > SEVERITY_ORDER[m.severity]:
                m.severity = r.severity
        ranked = sorted(by_message.values(), key=lambda m: (-m.count, m.message))
        summary.messages = ranked[:size]
        summary.other = sum(m.count for m in ranked[size:])
        return summary


def _log_mentions(record: LogRecord, wanted: set[str]) -> bool:
    names = {(record.instance_name or "").lower(), (record.host or "").lower()}
    names |= {str(v).lower() for k, v in (record.model_extra or {}).items() if isinstance(v, str)}
    return bool(names & wanted)


class ReplayMetrics:
    """Time series as recorded; a tag match selects series, the window selects points."""

    def __init__(self, series: list[Series]) -> None:
        self._series = series

    def catalog(self) -> list[Series]:
        return [s.model_copy(update={"points": []}) for s in self._series]

    def series(
        self, *, match: dict[str, str] | None, start: datetime, end: datetime, measurement: str | None = None
    ) -> list[Series]:
        out = []
        for s in self._series:
            if measurement and s.measurement != measurement:
                continue
            if match and any(s.tags.get(k) != v for k, v in match.items()):
                continue
            points = [(t, v) for t, v in s.points if start <= t <= end]
            out.append(s.model_copy(update={"points": points}))
        return out


class ReplaySnmp:
    """SNMP devices as recorded, with the earlier sample the SPEC's `previous` carries."""

    def __init__(self, world: World) -> None:
        self._devices = world.snmp

    def devices(self) -> dict[str, str]:
        return {name: dev.address for name, dev in self._devices.items()}

    def poll(self, device: str) -> DevicePoll:
        dev = self._devices.get(device)
        if dev is None:
            raise SourceError(f"no SNMP device named {device!r} in the recorded world")
        return DevicePoll(device=device, current=dev, previous=dev.previous, age_s=dev.previous_age_s)


class ReplayItsm:
    """ITSM records as recorded (ServiceNow field names)."""

    def __init__(self, incidents: list[ItsmIncident], changes: list[ItsmChange]) -> None:
        self._incidents = incidents
        self._changes = changes

    def configuration_items(self) -> set[str]:
        cis = [i.cmdb_ci for i in self._incidents] + [c.cmdb_ci for c in self._changes]
        return {ci for ci in cis if ci}

    def incidents(self, *, ci: str | None = None, open_only: bool = True) -> list[ItsmIncident]:
        return [
            i
            for i in self._incidents
            if (ci is None or i.cmdb_ci == ci)
            and not (open_only and (i.state or "").lower() in CLOSED_STATES)
        ]

    def changes(self, *, start: datetime, end: datetime, ci: str | None = None) -> list[ItsmChange]:
        out = []
        for c in self._changes:
            if ci is not None and c.cmdb_ci != ci:
                continue
            begins = c.start_date or c.end_date
            if begins is None or begins > end:
                continue
            if c.end_date is not None and c.end_date < start:
                continue
            out.append(c)
        return out


KnowledgeFactory = Callable[[World], KnowledgeSource | None]


def replay_sources(
    world: World, knowledge_factory: KnowledgeFactory | None = None, label: str = "replay"
) -> Sources:
    """Build the source bundle for a recorded world. Sections the world lacks stay None."""
    return Sources(
        sql=ReplaySql(world.sql) if world.sql else None,
        logs=ReplayLogs(world.logs) if world.logs else None,
        metrics=ReplayMetrics(world.metrics) if world.metrics else None,
        snmp=ReplaySnmp(world) if world.snmp else None,
        itsm=ReplayItsm(world.itsm.incidents, world.itsm.changes)
        if (world.itsm.incidents or world.itsm.changes)
        else None,
        knowledge=knowledge_factory(world) if (knowledge_factory and world.past_incidents) else None,
        label=label,
    )
