"""Metrics specialist: baselines, step changes, capacity forecasts and peer comparison over time series."""

from __future__ import annotations

from agents.base import AgentSpec, playbook_over
from tools.metrics.views import METRICS_TOOLS

MAX_ENTITIES = 4


plan_calls = playbook_over("metric_entity", METRICS_TOOLS, MAX_ENTITIES)


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
