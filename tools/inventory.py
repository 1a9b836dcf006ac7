"""The estate's inventory: which names exist, what kind of thing each is, and entity matching.

Matching a name someone typed against the inventory, in order:
1. exactly, or in another letter case (``SQL-PROD-01``), also ``host:port`` and ``host.domain``;
2. the same *name key*: lower case, separators (``-``, ``_``, ``.``) dropped and leading zeros of
   every number dropped, so ``sql_prod_01``, ``sqlprod01`` and ``sql-prod-1`` all are ``sql-prod-01``;
3. a typo: rapidfuzz's normalised Indel similarity (``fuzz.ratio``) of the two name keys at or above
   ``NEAR_MISS_CUTOFF`` **and the same numbers in the same order, with the same letters after the last
   one**. Those tell instances apart: ``sql-prod-02`` is never taken for ``sql-prod-01``, nor
   ``sql-prod-01a`` for ``sql-prod-01``, however similar the rest; only one candidate may pass.
Anything else is unknown, reported with the closest known names (``closest``), never swapped.

Services map to what they run on (``relations``): configured aliases (settings ``estate.aliases``),
the services that past incidents name together, and names sharing a service's word
(``payments`` -> ``payments-api``, ``payments-db``). See `collect_service_map`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field
from rapidfuzz import fuzz, process

from tools.isolation import isolated
from tools.sources import Sources

log = logging.getLogger(__name__)

EntityKind = str  # sql_instance | device | metric_entity | log_entity | ci | kb_service | service

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

NEAR_MISS_CUTOFF = 90.0  # fuzz.ratio of two name keys (0-100) for a typo to count as the same name
CLOSEST_FLOOR = 45.0  # below this similarity a known name is not offered as "closest"
SOURCE_KINDS = ("sql", "logs", "metrics", "snmp", "itsm", "knowledge")


def replica_of(replica: str, primary: str) -> bool:
    """`analytics-prod-replica-1` is a replica of `analytics-prod` by its name (RDS and common naming)."""
    return bool(
        re.fullmatch(
            re.escape(primary.lower()) + r"-(?:replica|standby|secondary|reader|ro|read)\b[\w-]*",
            replica.lower(),
        )
    )


def name_key(name: str) -> str:
    """``SQL_Prod-01`` -> ``sqlprod1``: lower case, no separators, numbers without leading zeros."""
    low = name.strip().lower()
    return re.sub(r"\d+", lambda m: str(int(m.group(0))), re.sub(r"[-_.\s]+", "", low))


def _numbers(name: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", name)]


def _tail(key: str) -> str:
    """What follows the last number (``sqlprod1a`` -> ``a``): it tells instances apart like a number."""
    return re.sub(r"^.*\d", "", key) if re.search(r"\d", key) else ""


class NameMatch(BaseModel):
    """How a typed name was matched to a known one: ``exact``, ``case`` or ``near-miss``."""

    said: str
    known: str
    how: str
    score: float = 100.0


class Entity(BaseModel):
    """A thing the question or alert is about, as known to the inventory."""

    name: str
    kinds: list[EntityKind] = Field(default_factory=list)
    engine: str | None = None
    matched_by: str = "name"  # name | label | alert_entity | near-miss | service
    said: str | None = None  # what the request wrote, when it was a near miss ("sqlprod01")
    via: str | None = None  # why a related entity is in scope ("checkout runs on it: configured alias")


@runtime_checkable
class ServiceGroups(Protocol):
    """A knowledge source that can say which services each past incident names together."""

    def service_groups(self) -> list[tuple[str, list[str]]]: ...


@dataclass
class Inventory:
    names: dict[str, set[EntityKind]] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)
    knowledge_size: int = 0
    addresses: dict[str, str] = field(default_factory=dict)  # "10.0.4.21:3306" -> "mysql-cart-01"
    relations: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> {runs on: why}
    sources: list[str] = field(default_factory=list)  # the configured source kinds (SOURCE_KINDS)

    def to_json(self) -> dict[str, Any]:
        """A JSON-shaped copy, so the plan's inventory travels in graph state (read once per run)."""
        return {
            "names": {n: sorted(k) for n, k in self.names.items()},
            "engines": dict(self.engines),
            "knowledge_size": self.knowledge_size,
            "addresses": dict(self.addresses),
            "relations": {n: dict(r) for n, r in self.relations.items()},
            "sources": list(self.sources),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inventory:
        return cls(
            names={n: set(k) for n, k in data.get("names", {}).items()},
            engines=dict(data.get("engines", {})),
            knowledge_size=int(data.get("knowledge_size", 0)),
            addresses=dict(data.get("addresses", {})),
            relations={n: dict(r) for n, r in data.get("relations", {}).items()},
            sources=list(data.get("sources", [])),
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

    def relate(self, service: str, runs_on: str, why: str) -> None:
        """Record that `service` runs on (depends on) `runs_on`; the first reason given is kept."""
        if service.strip() and runs_on.strip() and service.strip() != runs_on.strip():
            self.relations.setdefault(service.strip(), {}).setdefault(runs_on.strip(), why)

    def related(self, name: str) -> dict[str, str]:
        """Known names `name` runs on, with why: {sql-prod-01: "configured alias"}."""
        return {n: why for n, why in self.relations.get(name, {}).items() if n in self.names}

    def of_kind(self, kind: EntityKind) -> list[str]:
        return sorted(n for n, kinds in self.names.items() if kind in kinds)

    def entity(
        self, name: str, matched_by: str = "name", said: str | None = None, via: str | None = None
    ) -> Entity:
        return Entity(
            name=name,
            kinds=sorted(self.names.get(name, set())),
            engine=self.engines.get(name),
            matched_by=matched_by,
            said=said,
            via=via,
        )

    def lookup(self, name: str) -> str | None:
        """The inventory spelling of `name`: exact, another letter case, ``host:port``, ``host.domain``,
        or the same name key (``sqlprod01`` for ``sql-prod-01``) when exactly one known name has it."""
        match = self.resolve(name, typos=False)
        return match.known if match else None

    def resolve(self, said: str, *, typos: bool = True) -> NameMatch | None:
        """Match a typed name to a known one (see the module docstring), or None when it is unknown."""
        said = said.strip()
        if said in self.names:
            return NameMatch(said=said, known=said, how="exact")
        forms = [said.lower(), said.lower().split(":")[0], said.lower().split(":")[0].split(".")[0]]
        lowered = {n.lower(): n for n in self.names}
        for form in forms:
            if form in lowered:
                return NameMatch(said=said, known=lowered[form], how="case")
        keys: dict[str, list[str]] = {}
        for n in self.names:
            keys.setdefault(name_key(n), []).append(n)
        for form in dict.fromkeys(forms[1:]):
            same = keys.get(name_key(form), [])
            if len(same) == 1:
                return NameMatch(said=said, known=same[0], how="near-miss")
        if not typos:
            return None
        key, numbers = name_key(forms[1]), _numbers(forms[1])
        candidates = [n for n in self.names if _numbers(n) == numbers and _tail(name_key(n)) == _tail(key)]
        best = process.extract(
            key,
            {n: name_key(n) for n in candidates},
            scorer=fuzz.ratio,
            score_cutoff=NEAR_MISS_CUTOFF,
            limit=2,
        )
        if len(best) == 1 or (len(best) == 2 and best[0][1] > best[1][1]):
            return NameMatch(said=said, known=str(best[0][2]), how="near-miss", score=round(best[0][1], 1))
        return None

    def closest(self, said: str, limit: int = 3) -> list[str]:
        """The known names most like `said` (rapidfuzz WRatio over name keys), best first."""
        keys = {n: name_key(n) for n in self.names if not self.names[n] <= {"kb_service"}}
        found = process.extract(
            name_key(said), keys, scorer=fuzz.WRatio, score_cutoff=CLOSEST_FLOOR, limit=limit
        )
        return [str(n) for _, _, n in found]

    def named_after(self, word: str) -> list[str]:
        """Known names whose first part is the service word (``payments`` -> ``payments-api``,
        ``payments-db``); a trailing plural ``s`` on either side is ignored."""
        stem = word.lower().removesuffix("s")
        if len(stem) < 4:
            return []
        return sorted(
            n for n in self.names if re.split(r"[-_.]", n.lower(), maxsplit=1)[0].removesuffix("s") == stem
        )

    def match_text(self, text: str) -> list[str]:
        """Names from the inventory that occur in free text as whole tokens, longest first."""
        found: list[str] = []
        lowered = text.lower()
        for name in sorted(self.names, key=len, reverse=True):
            pattern = r"(?<![\w.-])" + re.escape(name.lower()) + r"(?![\w-]|\.\w)"
            if re.search(pattern, lowered) and not any(name.lower() in f.lower() for f in found):
                found.append(name)
        return found


def _pairs(names: Iterable[str]) -> list[tuple[str, str]]:
    unique = list(dict.fromkeys(n for n in names if n))
    return [(a, b) for a in unique for b in unique if a != b]


def collect_service_map(inv: Inventory, sources: Sources) -> None:
    """What services run on, and which sources are configured: configured aliases (a service name ->
    the instances, hosts or CIs behind it) and the services each past incident names together."""
    inv.sources = [kind for kind in SOURCE_KINDS if getattr(sources, kind, None) is not None]
    for alias, targets in sources.aliases.items():
        inv.add(alias, "service")
        for target in targets:
            inv.relate(alias, target, "configured alias")
    if isinstance(sources.knowledge, ServiceGroups):
        try:
            groups = sources.knowledge.service_groups()
        except Exception as exc:  # the service map is an extra; the investigation goes on without it
            log.warning("past incidents' services unreadable: %s", exc)
            groups = []
        for incident_id, services in groups:
            for a, b in _pairs(services):
                inv.relate(a, b, f"named together in past incident {incident_id}")


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
    collect_service_map(inv, sources)
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
