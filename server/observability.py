"""Operations: Prometheus metrics, structured JSON logs with the investigation id, optional traces.

Everything here listens to the lifecycle's events (`Investigations.hooks`), so nodes and tools do
not know about it: a span per specialist and per tool call is built from their start/finish events.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agents.events import ToolFinished
from graphs.events import AnswerReady, PlanMade, SpecialistFinished
from server.events import Event, RunDone, RunFailed, RunStarted

current_investigation: ContextVar[str | None] = ContextVar("opscopilot_investigation", default=None)


class Metrics:
    """The service's metrics on their own registry (one per app, so tests can build several)."""

    def __init__(self, depth: Callable[[], tuple[int, float]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.investigations = Counter(
            "opscopilot_investigations", "Investigations finished, by outcome", ["outcome"], registry=r
        )
        self.alerts_received = Counter(
            "opscopilot_alerts_received", "Alerts received", ["source"], registry=r
        )
        self.alerts_deduplicated = Counter(
            "opscopilot_alerts_deduplicated", "Alerts that joined an open alert", ["source"], registry=r
        )
        self.alerts_rejected = Counter(
            "opscopilot_alerts_rejected", "Webhook bodies rejected", ["source", "reason"], registry=r
        )
        self.tool_latency = Histogram(
            "opscopilot_tool_latency_seconds",
            "View tool latency",
            ["tool"],
            registry=r,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.model_tokens = Counter("opscopilot_model_tokens", "Model tokens", ["kind"], registry=r)
        self.approvals = Counter("opscopilot_approvals", "Approval decisions", ["decision"], registry=r)
        r.register(_QueueCollector(depth))

    def on_event(self, inv_id: str, ev: Event) -> None:
        body = ev.body
        if isinstance(body, ToolFinished):
            self.tool_latency.labels(body.tool).observe(body.seconds)
        elif isinstance(body, RunDone):
            if body.decision:
                self.approvals.labels(body.decision).inc()
            else:
                self.investigations.labels(body.status).inc()
            for kind, n in (body.tokens or {}).items():
                if n > 0 and kind.endswith("tokens"):
                    self.model_tokens.labels(kind.removesuffix("_tokens")).inc(n)
        elif isinstance(body, RunFailed) and body.code == "failed":
            self.investigations.labels("failed").inc()


class _QueueCollector(Collector):
    def __init__(self, depth: Callable[[], tuple[int, float]]) -> None:
        self.depth = depth

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            n, oldest = self.depth()
        except Exception:  # the queue is down: /readyz says so; metrics stay scrapeable
            n, oldest = -1, 0.0
        yield GaugeMetricFamily("opscopilot_queue_depth", "Investigations waiting or running", value=n)
        yield GaugeMetricFamily(
            "opscopilot_queue_oldest_age_seconds", "Age of the oldest waiting one", value=oldest
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, investigation_id (when in a run)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        inv = getattr(record, "investigation_id", None) or current_investigation.get()
        if inv:
            doc["investigation_id"] = inv
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.WARNING))


class Tracer:
    """OpenTelemetry spans built from the events: investigation > plan, specialists > tool calls."""

    def __init__(self, provider: Any) -> None:
        self.tracer = provider.get_tracer("opscopilot")
        self.roots: dict[str, Any] = {}
        self.started: dict[str, float] = {}

    def on_event(self, inv_id: str, ev: Event) -> None:
        from opentelemetry import trace

        body = ev.body
        now = time.time_ns()
        if isinstance(body, RunStarted):
            self.roots[inv_id] = self.tracer.start_span(
                "investigation",
                attributes={"opscopilot.investigation_id": inv_id, "opscopilot.kind": body.kind},
            )
            self.started[inv_id] = now
            return
        root = self.roots.get(inv_id)
        if root is None:
            return
        ctx = trace.set_span_in_context(root)

        def span(name: str, seconds: float, **attrs: Any) -> None:
            start = now - int(seconds * 1e9)
            s = self.tracer.start_span(name, context=ctx, start_time=start, attributes=attrs)
            s.end(end_time=now)

        if isinstance(body, PlanMade):
            span("plan", (now - self.started[inv_id]) / 1e9, specialists=[s.name for s in body.specialists])
        elif isinstance(body, SpecialistFinished):
            span(f"specialist {body.specialist}", body.seconds, findings=body.findings)
        elif isinstance(body, ToolFinished):
            span(f"tool {body.tool}", body.seconds, entity=body.entity, specialist=body.specialist,
                 error=body.error or "")  # fmt: skip
        elif isinstance(body, AnswerReady):
            span("synthesize", 0.0, proposals=len(body.proposals))
        elif isinstance(body, RunDone | RunFailed):
            root.set_attribute("opscopilot.status", getattr(body, "status", "failed"))
            root.end()
            self.roots.pop(inv_id, None)
            self.started.pop(inv_id, None)


def otlp_provider(endpoint: str) -> Any:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "opscopilot"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    return provider
