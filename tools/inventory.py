"""The estate's inventory: which names exist, what kind of thing each is, and entity matching."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

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
    addresses: dict[str, str] = field(default_factory=dict)  # "10.0.4.21:3306" -> "mysql-cart-01"

    def to_json(self) -> dict[str, Any]:
        """A JSON-shaped copy, so the plan's inventory travels in graph state (read once per run)."""
        return {
            "names": {n: sorted(k) for n, k in self.names.items()},
            "engines": dict(self.engines),
            "knowledge_size": self.knowledge_size,
            "addresses": dict(self.addresses),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inventory:
        return cls(
            names={n: set(k) for n, k in data.get("names", {}).items()},
            engines=dict(data.get("engines", {})),
            knowledge_size=int(data.get("knowledge_size", 0)),
            addresses=dict(data.get("addresses", {})),
        )

    # --- host:port aliases (issue 10): separate from name matching ---------------------------------

    def add_address(self, address: str, name: str) -> None:
        """Remember that `address` (host:port, IP or IP:port) is the inventory entity `name`."""
        address = address.strip().lower()
        if address and name in self.names and address != name.lower():
            self.addresses.setdefault(address, name)

    def resolve_address(self, text: str) -> str | None:
        """The entity a host:port / IP names: a learned alias (with or without the port), else the
        inventory name the host part spells (`pg-orders-01:5432` -> `pg-orders-01`)."""
        low = text.strip().lower()
        if low in self.addresses:
            return self.addresses[low]
        host = low.rsplit(":", 1)[0] if re.fullmatch(r".+:\d{1,5}", low) else low
        if host in self.addresses:
            return self.addresses[host]
        for address, name in self.addresses.items():
            if address.rsplit(":", 1)[0] == host:
                return name
        return self.lookup(host)

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
    """Collect every named thing the configured sources know about. A failing source is skipped."""
    inv = Inventory()
    try:
        if sources.sql:
            for name, engine in sources.sql.instances().items():
                inv.add(name, "sql_instance")
                inv.engines[name] = engine
        if sources.snmp:
            for name in sources.snmp.devices():
                inv.add(name, "device")
        if sources.metrics:
            for s in sources.metrics.catalog():
                for key in ENTITY_TAGS:
                    if key in s.tags:
                        inv.add(
                            s.tags[key].split(":")[0] if key == "instance" else s.tags[key], "metric_entity"
                        )
        if sources.logs:
            for name in sources.logs.entities():
                inv.add(name, "log_entity")
        if sources.itsm:
            for name in sources.itsm.configuration_items():
                inv.add(name, "ci")
        if sources.knowledge:
            inv.knowledge_size = sources.knowledge.size()
            for name in sources.knowledge.services():
                inv.add(name, "kb_service")
    except Exception as exc:  # an inventory read must not stop the investigation
        log.warning("inventory read failed: %s", exc)
    return inv


_ADDRESS_TAGS = (
    "address",
    "addr",
    "server_address",
    "server",
    "endpoint",
    "target",
    "host_port",
    "listen_address",
    "ip",
    "host_ip",
)
_ADDRESS = re.compile(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|[A-Za-z][\w.-]*)(?::\d{1,5})?$")


def learn_addresses(inv: Inventory, sources: Sources) -> None:
    """Learn host:port aliases: SNMP device addresses, a live SQL source's configured addresses, and metric
    series that carry an address tag next to an entity tag. A failing source is skipped."""
    try:
        if sources.snmp:
            for name, address in sources.snmp.devices().items():
                inv.add_address(address, name)
        addresses = getattr(sources.sql, "addresses", None)
        if callable(addresses):
            for name, address in addresses().items():
                inv.add_address(str(address), str(name))
        if sources.metrics:
            for s in sources.metrics.catalog():
                owner = next((s.tags[k] for k in ENTITY_TAGS if k in s.tags and s.tags[k] in inv.names), None)
                if owner is None:
                    continue
                for key in _ADDRESS_TAGS:
                    value = s.tags.get(key)
                    if (
                        value
                        and value != owner
                        and _ADDRESS.match(value)
                        and (":" in value or value[0].isdigit())
                    ):
                        inv.add_address(value, owner)
    except Exception as exc:  # aliases are a help, never a reason to stop
        log.warning("learning host:port aliases failed: %s", exc)
