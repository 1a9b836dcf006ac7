"""Network specialist: SNMP devices, interface state, errors, discards and utilisation."""

from __future__ import annotations

from agents.base import AgentSpec, ToolCall
from tools.inventory import Entity, Inventory
from tools.network.views import NETWORK_TOOLS
from tools.sources import ToolContext

MAX_DEVICES = 4


def plan_calls(
    entities: list[Entity], inventory: Inventory, question: str, ctx: ToolContext
) -> list[ToolCall]:
    devices = [e.name for e in entities if "device" in e.kinds] or inventory.of_kind("device")
    return [ToolCall(tool=t.spec.name, entity=d) for d in devices[:MAX_DEVICES] for t in NETWORK_TOOLS]


SPEC = AgentSpec(
    name="network",
    description=(
        "SNMP switches, routers and firewalls: interfaces down, CRC and input errors, discards, "
        "link utilisation, packet loss, device reboots; slowness for users at a site or branch."
    ),
    keywords=(
        "network",
        "switch",
        "router",
        "firewall",
        "interface",
        "port",
        "link",
        "packet",
        "packets",
        "crc",
        "snmp",
        "bandwidth",
        "branch",
        "site",
        "vlan",
        "uplink",
        "wan",
        "lan",
        "ethernet",
    ),
    entity_kinds=("device",),
    tools=tuple(NETWORK_TOOLS),
    plan_calls=plan_calls,
)
