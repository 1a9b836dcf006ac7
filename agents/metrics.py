"""Metrics specialist: baselines, step changes, capacity forecasts and peer comparison over time series."""

from __future__ import annotations

from agents.base import AgentSpec, ToolCall
from tools.inventory import Entity, Inventory
from tools.metrics.views import METRICS_TOOLS
from tools.sources import ToolContext

MAX_ENTITIES = 4


def plan_calls(
    entities: list[Entity], inventory: Inventory, question: str, ctx: ToolContext
) -> list[ToolCall]:
    measured = set(inventory.of_kind("metric_entity"))
    targets = [e.name for e in entities if e.name in measured]
    if not targets:
        targets = sorted(measured)
    return [ToolCall(tool=t.spec.name, entity=name) for name in targets[:MAX_ENTITIES] for t in METRICS_TOOLS]


SPEC = AgentSpec(
    name="metrics",
    description=(
        "Time series in InfluxDB/Prometheus/CloudWatch: CPU, memory, disk and storage usage, latency, "
        "throughput, IOPS, connections, replication lag; baseline versus now, step changes and when "
        "they happened, forecasts of when a disk fills up, comparison with peers."
    ),
    keywords=(
        "metric",
        "metrics",
        "cpu",
        "memory",
        "disk",
        "storage",
        "space",
        "latency",
        "p95",
        "p99",
        "throughput",
        "iops",
        "usage",
        "utilization",
        "utilisation",
        "trend",
        "forecast",
        "full",
        "filling",
        "spike",
        "spiked",
        "spikes",
        "error rate",
        "rate",
        "slow",
        "slower",
        "degraded",
        "saturated",
        "jumped",
        "graph",
        "dashboard",
        "lag",
        "load",
        "connections",
        "healthy",
    ),
    entity_kinds=("metric_entity",),
    tools=tuple(METRICS_TOOLS),
    plan_calls=plan_calls,
)
