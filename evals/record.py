"""Record a live investigation as a SPEC v1 scenario: what the tools read becomes the world.

The recorder wraps every source in a proxy that keeps exactly what it returned during the
investigation, so replaying the scenario feeds the analyzers the same rows and reproduces the
same findings. The expectations are taken from the live run (route, non-info findings, the
proposed remediation, the cited incident); review them before adding the file to a suite.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tools.redact import redact_sql, redact_text
from tools.sources import DevicePoll, KnowledgeHit, Sources
from tools.world import (
    DeadlockRow,
    DeviceSample,
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
    WaitSample,
    WaitSamples,
    World,
)


class Recorder:
    """Collects what the wrapped sources return. Thread-safe: specialists run in parallel."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.engines: dict[str, str] = {}
        self.sql: dict[str, dict[str, list[Any]]] = {}
        self.logs: dict[tuple[str, str], LogRecord] = {}
        self.series: dict[str, Series] = {}
        self.snmp: dict[str, SnmpDevice] = {}
        self.incidents: dict[str, ItsmIncident] = {}
        self.changes: dict[str, ItsmChange] = {}
        self.past: dict[str, PastIncident] = {}

    def keep_sql(self, instance: str, dataset: str, rows: Any) -> None:
        """Keep what a dataset returned: a list of rows, or one row (`server`, `waits_earlier`)."""
        with self._lock:
            self.sql.setdefault(instance, {})[dataset] = list(rows) if isinstance(rows, list) else rows

    def keep_series(self, items: list[Series]) -> None:
        with self._lock:
            for s in items:
                old = self.series.get(s.label)
                points = dict(old.points) if old else {}
                points.update(dict(s.points))
                self.series[s.label] = s.model_copy(update={"points": sorted(points.items())})

    def world(self, redact: bool = True) -> World:
        """The recorded world; by default SQL literals and PII in messages are redacted, so a
        production snapshot can be kept in a repository."""
        sql: dict[str, Any] = {}
        for name, datasets in self.sql.items():
            engine = self.engines.get(name)
            if engine is None:
                continue
            sql[name] = {"engine": engine, **{k: _dump(v, redact) for k, v in datasets.items()}}
        return World.model_validate(
            {
                "sql": sql,
                "logs": [
                    {**r.model_dump(), "message": redact_text(r.message) if redact else r.message}
                    for r in sorted(self.logs.values(), key=lambda r: r.timestamp)
                ],
                "metrics": [s.model_dump() for s in self.series.values()],
                "snmp": {k: v.model_dump() for k, v in self.snmp.items()},
                "itsm": {
                    "incidents": [i.model_dump() for i in self.incidents.values()],
                    "changes": [c.model_dump() for c in self.changes.values()],
                },
                "past_incidents": [p.model_dump() for p in self.past.values()],
            }
        )


def _scrub_row(row: dict[str, Any], redact: bool) -> dict[str, Any]:
    """SQL text redacted wherever it is: a row's own, or a deadlock party's."""
    if redact and row.get("sql_text"):
        row["sql_text"] = redact_sql(row["sql_text"])
    for party in row.get("parties") or []:
        _scrub_row(party, redact)
    return row


def _dump(value: Any, redact: bool) -> Any:
    if isinstance(value, list):
        return [_scrub_row(r.model_dump(), redact) for r in value]
    return _scrub_row(value.model_dump(), redact)


class _RecSql:
    def __init__(self, inner: Any, rec: Recorder) -> None:
        self._inner, self._rec = inner, rec

    def instances(self) -> dict[str, Any]:
        found = self._inner.instances()
        self._rec.engines.update(found)
        return found

    def _read(self, dataset: str, instance: str) -> list[Any]:
        rows = getattr(self._inner, dataset)(instance)
        self._rec.keep_sql(instance, dataset, rows)  # engines were read once, in recording_sources
        return rows

    def datasets(self, instance: str) -> set[str]:
        found: set[str] = self._inner.datasets(instance)
        return found

    def sessions(self, instance: str) -> list[SessionRow]:
        return self._read("sessions", instance)

    def waits(self, instance: str) -> list[WaitRow]:
        return self._read("waits", instance)

    def wait_samples(self, instance: str) -> WaitSamples:
        samples: WaitSamples = self._inner.wait_samples(instance)
        self._rec.keep_sql(instance, "waits", samples.current)
        if samples.earlier is not None and samples.interval_s:
            earlier = WaitSample(age_s=samples.interval_s, waits=samples.earlier)
            self._rec.keep_sql(instance, "waits_earlier", earlier)
        return samples

    def top_queries(self, instance: str) -> list[QueryStatRow]:
        return self._read("top_queries", instance)

    def files(self, instance: str) -> list[FileRow]:
        return self._read("files", instance)

    def server(self, instance: str) -> list[ServerRow]:
        rows: list[ServerRow] = self._inner.server(instance)
        if rows:
            self._rec.keep_sql(instance, "server", rows[0])
        if len(rows) > 1:
            self._rec.keep_sql(instance, "server_earlier", rows[1])
        return rows

    def log_reuse(self, instance: str) -> list[LogReuseRow]:
        return self._read("log_reuse", instance)

    def replicas(self, instance: str) -> list[ReplicaRow]:
        return self._read("replicas", instance)

    def deadlocks(self, instance: str) -> list[DeadlockRow]:
        return self._read("deadlocks", instance)


class _RecLogs:
    def __init__(self, inner: Any, rec: Recorder) -> None:
        self._inner, self._rec = inner, rec

    def entities(self) -> set[str]:
        return self._inner.entities()

    def search(self, **kwargs: Any) -> list[LogRecord]:
        records = self._inner.search(**kwargs)
        with self._rec._lock:
            for r in records:
                self._rec.logs[(r.timestamp.isoformat(), r.message)] = r
        return records


class _RecMetrics:
    def __init__(self, inner: Any, rec: Recorder) -> None:
        self._inner, self._rec = inner, rec

    def catalog(self) -> list[Series]:
        return self._inner.catalog()

    def series(self, **kwargs: Any) -> list[Series]:
        found = self._inner.series(**kwargs)
        self._rec.keep_series(found)
        return found


class _RecSnmp:
    def __init__(self, inner: Any, rec: Recorder) -> None:
        self._inner, self._rec = inner, rec

    def devices(self) -> dict[str, str]:
        return self._inner.devices()

    def poll(self, device: str) -> DevicePoll:
        poll = self._inner.poll(device)
        previous = poll.previous or DeviceSample()
        self._rec.snmp[device] = poll.current.model_copy(
            update={"previous": previous if poll.previous else None, "previous_age_s": poll.age_s}
        )
        return poll


class _RecItsm:
    def __init__(self, inner: Any, rec: Recorder) -> None:
        self._inner, self._rec = inner, rec

    def configuration_items(self) -> set[str]:
        return self._inner.configuration_items()

    def incidents(self, **kwargs: Any) -> list[ItsmIncident]:
        found = self._inner.incidents(**kwargs)
        with self._rec._lock:
            self._rec.incidents.update({i.number: i for i in found})
        return found

    def changes(self, **kwargs: Any) -> list[ItsmChange]:
        found = self._inner.changes(**kwargs)
        with self._rec._lock:
            self._rec.changes.update({c.number: c for c in found})
        return found


class _RecKnowledge:
    def __init__(self, inner: Any, rec: Recorder) -> None:
        self._inner, self._rec = inner, rec

    def size(self) -> int:
        return self._inner.size()

    def services(self) -> set[str]:
        return self._inner.services()

    def service_groups(self) -> list[tuple[str, list[str]]]:
        groups = getattr(self._inner, "service_groups", None)
        return groups() if callable(groups) else []

    def search(self, query: str, k: int = 3) -> list[KnowledgeHit]:
        hits = self._inner.search(query, k)
        with self._rec._lock:
            self._rec.past.update({h.incident.id: h.incident for h in hits})
        return hits


def recording_sources(sources: Sources, rec: Recorder) -> Sources:
    """The same sources, each wrapped so that what it returns is kept in `rec`."""
    wrap = {
        "sql": _RecSql,
        "logs": _RecLogs,
        "metrics": _RecMetrics,
        "snmp": _RecSnmp,
        "itsm": _RecItsm,
        "knowledge": _RecKnowledge,
    }
    kwargs: dict[str, Any] = {
        name: (cls(getattr(sources, name), rec) if getattr(sources, name) is not None else None)
        for name, cls in wrap.items()
    }
    if sources.sql is not None:
        rec.engines.update(sources.sql.instances())
    return Sources(**kwargs, label=f"recording {sources.label}")


def replayable_route(route: list[str], world: World) -> list[str]:
    """The specialists of the live route that the recording can route to again: a source that answered
    nothing for this run (say no change in the window) leaves nothing in the world to route by."""
    from agents.registry import REGISTRY
    from tools.inventory import build_inventory
    from tools.replay import replay_sources

    inventory = build_inventory(replay_sources(world))
    return [
        s
        for s in route
        if (bool(world.past_incidents) if s == "knowledge" else REGISTRY[s].has_data(inventory))  # type: ignore[index]
    ]


def build_scenario(
    *,
    scenario_id: str,
    title: str,
    now: datetime,
    question: str | None,
    alert: dict[str, Any] | None,
    world: World,
    values: dict[str, Any],
) -> dict[str, Any]:
    """A SPEC v1 scenario dict whose expectations are what the live run concluded."""
    report = values.get("report") or {}
    problems = [
        f for f in report.get("findings", []) if f["severity"] != "info" and f["kind"] != "similar_incident"
    ]
    chosen = problems or [f for f in report.get("findings", []) if f["kind"] != "similar_incident"][:2]
    proposals = values.get("proposals", [])
    expect: dict[str, Any] = {
        "route": replayable_route([p["specialist"] for p in values.get("plan", [])], world),
        "findings": [[f["title"]] for f in chosen],
    }
    if proposals:
        first = proposals[0]
        expect["remediation"] = {
            "action": first["action"],
            "target": first["target"],
            "requires_approval": True,
        }
    else:
        expect["remediation"] = {"action": "none"}
    citations = report.get("citations") or []
    if citations:
        expect["cites_incident"] = citations[0]["incident_id"]
    doc: dict[str, Any] = {
        "id": scenario_id,
        "title": title,
        "kind": "alert" if alert else "question",
        "now": now.isoformat().replace("+00:00", "Z"),
        "input": {"alert": alert} if alert else {"question": question},
        "world": world.model_dump(mode="json", exclude_defaults=True),
        "expect": expect,
    }
    return doc


def write_scenario(path: Path, doc: dict[str, Any]) -> None:
    header = (
        f"# Recorded by `opscopilot record` from live sources at {doc['now']}.\n"
        "# The expectations are what the live run concluded: review them before adding it to a suite.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8"
    )
    tmp.replace(path)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "recorded"
