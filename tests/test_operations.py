"""Operations: a trace per investigation (spans per node and tool call), JSON logs carrying the
investigation id, and Slack / Teams / generic webhooks announcing a finished investigation."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server.app import build_context
from server.investigations import NewInvestigation
from server.observability import JsonFormatter, current_investigation
from tests.api_helpers import DEMO, settings_for

QUESTION = "Why is checkout timing out on sql-prod-01?"


def test_each_investigation_is_traced_with_a_span_per_node_and_tool(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ctx = build_context(settings_for(tmp_path, workers=0), scenario=DEMO, tracer_provider=provider)
    svc = ctx.service
    inv = svc.create(
        NewInvestigation(question=QUESTION, requester="t", source_ref=ctx.source_ref, now=ctx.clock)
    )
    svc.run(inv)
    spans = exporter.get_finished_spans()
    names = {s.name for s in spans}
    assert {"investigation", "plan", "specialist database", "tool blocking_chains", "synthesize"} <= names
    root = next(s for s in spans if s.name == "investigation")
    assert root.attributes is not None and root.attributes["opscopilot.investigation_id"] == inv
    assert all(s.context.trace_id == root.context.trace_id for s in spans)
    assert all(
        s.parent is not None and s.parent.span_id == root.context.span_id for s in spans if s is not root
    )
    svc.close()


def test_json_logs_carry_the_investigation_id() -> None:
    record = logging.LogRecord("server.worker", logging.WARNING, __file__, 1, "tool %s slow", ("x",), None)
    token = current_investigation.set("inv-42")
    try:
        doc = json.loads(JsonFormatter().format(record))
    finally:
        current_investigation.reset(token)
    assert doc == {**doc, "level": "WARNING", "message": "tool x slow", "investigation_id": "inv-42"}


class _Receiver(BaseHTTPRequestHandler):
    got: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Receiver.got.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_finished_investigation_is_announced_on_slack_teams_and_generic_webhooks(tmp_path: Path) -> None:
    """A local receiver stands in for Slack's, Teams' and a generic incoming webhook (none can run
    here); it records the JSON each format sends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    notify = [{"url": f"{url}/{fmt}", "format": fmt} for fmt in ("slack", "teams", "generic")]
    ctx = build_context(
        settings_for(tmp_path, workers=0, notify=notify, public_url="https://ops.example"), scenario=DEMO
    )
    svc = ctx.service
    inv = svc.create(
        NewInvestigation(question=QUESTION, requester="t", source_ref=ctx.source_ref, now=ctx.clock)
    )
    svc.run(inv)
    server.shutdown()
    got = dict(_Receiver.got)
    link = f"https://ops.example/api/v1/investigations/{inv}"
    assert got["/generic"]["headline"].startswith("Most likely cause: Blocking chain on sql-prod-01")
    assert got["/generic"]["link"] == link and got["/generic"]["findings"][0].startswith("[critical]")
    assert "Blocking chain" in got["/slack"]["text"] and link in json.dumps(got["/slack"]["blocks"])
    card = got["/teams"]["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["actions"][0]["url"] == link
    svc.close()
