"""Network specialist: SNMP devices, interface state, errors, discards and utilisation."""

from __future__ import annotations

from agents.base import AgentSpec, playbook_over
from tools.network.views import NETWORK_TOOLS

MAX_DEVICES = 4


plan_calls = playbook_over("device", NETWORK_TOOLS, MAX_DEVICES)


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
