"""A stand-in PagerDuty Events API v2 (``POST /v2/enqueue``; no PagerDuty can be reached from here).

It checks events the way the Events API does: a JSON body; a 32-character ``routing_key`` of a known
integration (else 400 "invalid event", as PagerDuty answers an unknown key with 400 too);
``event_action`` trigger | acknowledge | resolve; for triggers a ``payload`` with ``summary`` (at
most 1024 characters), ``source`` and ``severity`` (critical | error | warning | info), and only the
documented payload keys; ``dedup_key`` at most 255 characters. It answers 202
``{"status": "success", "message": "Event processed", "dedup_key": ...}`` or 400
``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``. Triggers with
the dedup_key of an open alert are added to that alert, as PagerDuty de-duplicates them.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.standins.itsm_base import ApiStandIn, Rejected, Reply, Request

EVENT_KEYS = {
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "images",
    "links",
    "client",
    "client_url",
}
PAYLOAD_KEYS = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
SEVERITIES = {"critical", "error", "warning", "info"}


def _invalid(*errors: str) -> Rejected:
    return Rejected(
        Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)})
    )


class PagerDutyEventsStandIn(ApiStandIn):
    name = "pagerduty-events"

    def __init__(self, *, routing_key: str = "R0UT1NGKEY0123456789abcdef012345") -> None:
        super().__init__()
        assert len(routing_key) == 32
        self.routing_key = routing_key
        self.alerts: dict[str, list[dict[str, Any]]] = {}  # dedup_key -> the events that reached it

    def triggers(self) -> list[Request]:
        return [r for r in self.seen if r.path == "/v2/enqueue"]

    def handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v2/enqueue":
            raise Rejected(Reply(404, {"status": "not found"}))
        event = request.body
        if not isinstance(event, dict) or "_malformed" in event:
            raise _invalid("Event object is not valid JSON")
        problems = [f"'{k}' is not a valid property" for k in sorted(set(event) - EVENT_KEYS)]
        key = event.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            problems.append("'routing_key' must be 32 characters")
        elif key != self.routing_key:
            problems.append("'routing_key' is not a known integration key")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            problems.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
        dedup = event.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            problems.append("'dedup_key' must be a string of at most 255 characters")
        if action == "trigger":
            problems += self._payload(event.get("payload"))
        elif action in ("acknowledge", "resolve") and not dedup:
            problems.append("'dedup_key' is required for acknowledge and resolve")
        if problems:
            raise _invalid(*problems)
        dedup = dedup or uuid.uuid4().hex
        if action == "trigger":
            self.alerts.setdefault(dedup, []).append(event)
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": dedup})

    @staticmethod
    def _payload(payload: Any) -> list[str]:
        if not isinstance(payload, dict):
            return ["'payload' is missing or not an object"]
        problems = [f"'payload.{k}' is not a valid property" for k in sorted(set(payload) - PAYLOAD_KEYS)]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary or len(summary) > 1024:
            problems.append("'payload.summary' is required and at most 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            problems.append("'payload.source' is required")
        if payload.get("severity") not in SEVERITIES:
            problems.append("'payload.severity' is invalid (must be one of: critical, error, warning, info)")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            problems.append("'payload.custom_details' must be an object")
        return problems
