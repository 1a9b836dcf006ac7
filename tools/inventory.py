"""The estate's inventory: which names exist, what kind of thing each is, and entity matching."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from tools.isolation import isolated
from tools.sources import Sources

log = logging.getLogger(__name__)

EntityKind = str  # sql_instance | device | metric_entity | log_entity | ci | kb_service

# Tag keys whose values name an entity (hosts, instances, services, devices); other tags
# (path, stat, namespace, dimension ...) qualify a series but are not entities.
ENTITY_TAGS = (
    "host",
    "hostname",
    "instance",
    "instance_name",
    "db_instance",
    "server",
    "service",
    "device",
    "cluster",
    "db_cluster",
    "node",
    "pod",
    "app",
    "job",
)


class Entity(BaseModel):
    """A thing the question or alert is about, as known to the inventory."""

    name: str
    kinds: list[EntityKind] = Field(default_factory=list)
    engine: str | None = None
    matched_by: str = "name"  # name | label | alert_entity | default


@dataclass
class Inventory:
    names: dict[str, set[EntityKind]] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)
    knowledge_size: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-shaped copy, so the plan's inventory travels in graph state (read once per run)."""
        return {
            "names": {n: sorted(k) for n, k in self.names.items()},
            "engines": dict(self.engines),
            "knowledge_size": self.knowledge_size,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inventory:
        return cls(
            names={n: set(k) for n, k in data.get("names", {}).items()},
            engines=dict(data.get("engines", {})),
            knowledge_size=int(data.get("knowledge_size", 0)),
        )

    def add(self, name: str | None, kind: EntityKind) -> None:
        if name and name.strip():
            self.names.setdefault(name.strip(), set()).add(kind)

    def of_kind(self, kind: EntityKind) -> list[str]:
        return sorted(n for n, kinds in self.names.items() if kind in kinds)

    def entity(self, name: str, matched_by: str = "name") -> Entity:
        return Entity(
            name=name,
            kinds=sorted(self.names.get(name, set())),
            engine=self.engines.get(name),
            matched_by=matched_by,
        )

    def lookup(self, name: str) -> str | None:
        """Return the inventory spelling of `name` (case-insensitive, `host:port` tolerated)."""
        if name in self.names:
            return name
        low = name.lower().split(":")[0]
        for known in self.names:
            if known.lower() == low:
                return known
        return None

    def match_text(self, text: str) -> list[str]:
        """Names from the inventory that occur in free text as whole tokens, longest first."""
        found: list[str] = []
        lowered = text.lower()
        for name in sorted(self.names, key=len, reverse=True):
            pattern = r"(?<![\w.-])" + re.escape(name.lower()) + r"(?![\w-]|\.\w)"
            if re.search(pattern, lowered) and not any(name.lower() in f.lower() for f in found):
                found.append(name)
        return found


def build_inventory(sources: Sources) -> Inventory:
    """Collect every named thing the configured sources know about.

    Each source is read on its own: one that fails (say Prometheus is down) is left out with a
    per-run note, and the names the other sources know still route their specialists."""
    inv = Inventory()
    if sources.sql:
        sql = sources.sql
        for name, engine in (isolated("SQL", lambda: sql.instances(), "instances") or {}).items():
            inv.add(name, "sql_instance")
            inv.engines[name] = engine
    if sources.snmp:
        snmp = sources.snmp
        for name in isolated("SNMP", lambda: snmp.devices(), "devices") or {}:
            inv.add(name, "device")
    if sources.metrics:
        metrics = sources.metrics
        for s in isolated("metrics", lambda: metrics.catalog(), "catalog") or []:
            for key in ENTITY_TAGS:
                if key in s.tags:
                    inv.add(s.tags[key].split(":")[0] if key == "instance" else s.tags[key], "metric_entity")
    if sources.logs:
        logs = sources.logs
        for name in isolated("logs", lambda: logs.entities(), "entities") or set():
            inv.add(name, "log_entity")
    if sources.itsm:
        itsm = sources.itsm
        for name in isolated("ITSM", lambda: itsm.configuration_items(), "configuration items") or set():
            inv.add(name, "ci")
    if sources.knowledge:
        knowledge = sources.knowledge
        inv.knowledge_size = isolated("knowledge", lambda: knowledge.size(), "size") or 0
        for name in isolated("knowledge", lambda: knowledge.services(), "services") or set():
            inv.add(name, "kb_service")
    return inv
