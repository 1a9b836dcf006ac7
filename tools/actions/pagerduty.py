"""page_oncall: trigger a PagerDuty alert through the Events API v2 (``POST /v2/enqueue``).

The event's ``dedup_key`` is derived from the idempotency key, so sending it again (a retried
worker) adds to the same open alert instead of paging twice: PagerDuty itself makes the page
idempotent. The payload follows the PD-CEF schema: summary (at most 1024 characters), source (the
entity), severity (critical | error | warning | info), component, class (the finding's kind) and
custom details (the evidence, the approvers, the investigation). Dry run: nothing is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from tools.actions.base import (
    ActionRequest,
    Done,
    ExecutionResult,
    Failed,
    Refused,
    Trail,
    check_evidence,
    run_guarded,
)
from tools.actions.config import PagerDutyEventsConfig
from tools.actions.http import ActionApi, ApiExecutor

SEVERITIES = {"critical": "critical", "warning": "warning", "info": "info", "error": "error"}


def dedup_key(key: str) -> str:
    return f"opscopilot-{key[:48]}"


class PagerDutyPage(ApiExecutor):
    """page_oncall through one Events API v2 integration (routing key)."""

    actions = ("page_oncall",)

    def __init__(
        self,
        cfg: PagerDutyEventsConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if cfg.routing_key is None:
            raise ValueError(
                "PagerDuty Events needs routing_key (the service's Events API v2 integration key)"
            )
        self.cfg = cfg
        self._routing_key = cfg.routing_key.get_secret_value()
        api = ActionApi(
            "PagerDuty Events",
            cfg.url,
            headers={"Accept": "application/json"},
            timeout_s=cfg.request_timeout_s,
            auth_hint="check actions.pagerduty_events.routing_key",
            transport=transport,
            sleep=sleep,
        )
        super().__init__(api, sleep=sleep)

    def execute(self, request: ActionRequest) -> ExecutionResult:
        return run_guarded(request, lambda trail: self._page(request, trail))

    def reconcile(self, request: ActionRequest) -> ExecutionResult | None:
        return None  # sending the same dedup_key again is idempotent in PagerDuty

    def _page(self, request: ActionRequest, trail: Trail) -> Done:
        target = request.target
        if target.kind != "page":
            raise Refused(f"page_oncall needs a page target, got a {target.kind} target")
        check_evidence(request)
        summary = f"{request.proposal.reason or request.summary}"[:1024] or f"OpsCopilot: {target.entity}"
        kinds = sorted({e.tool for e in request.evidence})
        event = {
            "routing_key": self._routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key(request.key),
            "client": "OpsCopilot",
            "payload": {
                "summary": summary,
                "source": target.entity[:255],
                "severity": SEVERITIES.get(request.severity, "warning"),
                "timestamp": datetime.now(UTC).isoformat(),
                "component": target.attrs.get("series", "")[:255] or None,
                "class": ", ".join(kinds)[:255] or None,
                "custom_details": {
                    "investigation": request.thread_id,
                    "headline": request.summary,
                    "findings": request.findings[:10],
                    "evidence": [e.summary for e in request.evidence][:10],
                    "approved_by": request.approvers,
                },
            },
        }
        event["payload"] = {k: v for k, v in event["payload"].items() if v is not None}  # type: ignore[attr-defined]
        if request.dry_run:
            return (
                "dry_run",
                f"dry run: would trigger a PagerDuty alert for {target.entity} "
                f"(dedup key {event['dedup_key']}): "
                f"{summary[:120]}; nothing was sent",
                {"data": {"dedup_key": event["dedup_key"]}},
            )
        answer = self.api.call("POST", "/v2/enqueue", trail, json=event, ok=(202,)) or {}
        if answer.get("status") != "success":
            raise Failed(f"PagerDuty did not accept the event: {answer}")
        key = str(answer.get("dedup_key") or event["dedup_key"])
        return (
            "executed",
            f"PagerDuty alert triggered for {target.entity} (dedup key {key}); the on-call engineer is paged",
            {"external_id": key},
        )
