"""Announce a finished investigation on outgoing webhooks: Slack, Microsoft Teams or generic JSON.

Each message carries the headline, the top findings and a link; a failed delivery is logged and
never fails the investigation."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from server.text import cut_quoted

log = logging.getLogger(__name__)
TOP_FINDINGS = 3


def link_for(public_url: str | None, inv_id: str) -> str:
    base = (public_url or "http://127.0.0.1:8000").rstrip("/")
    return f"{base}/api/v1/investigations/{inv_id}"


def payload(fmt: str, inv: dict[str, Any], link: str) -> dict[str, Any]:
    headline = cut_quoted(inv.get("headline") or "(no headline)", 300)
    findings = [
        f"[{f.get('severity', '?')}] {cut_quoted(str(f.get('title', '')), 200)}"
        for f in (inv.get("findings") or [])[:TOP_FINDINGS]
    ]
    status = inv.get("status", "")
    if fmt == "slack":
        lines = "\n".join(f"• {f}" for f in findings) or "• no findings"
        return {
            "text": f"OpsCopilot: {headline}",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*\nstatus: {status}"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": lines}},
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"<{link}|Open the investigation>"}],
                },
            ],
        }
    if fmt == "teams":
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": headline, "weight": "Bolder", "wrap": True},
                            {"type": "TextBlock", "text": f"status: {status}", "isSubtle": True},
                            *({"type": "TextBlock", "text": f, "wrap": True} for f in findings),
                        ],
                        "actions": [
                            {"type": "Action.OpenUrl", "title": "Open the investigation", "url": link}
                        ],
                    },
                }
            ],
        }
    return {
        "investigation_id": inv.get("id"),
        "status": status,
        "headline": headline,
        "findings": findings,
        "link": link,
    }


class Notifier:
    def __init__(self, targets: list[Any], public_url: str | None) -> None:
        self.targets = targets
        self.public_url = public_url

    def send(self, inv: dict[str, Any]) -> list[int]:
        """POST to every target; returns the HTTP statuses (0 for a failed delivery)."""
        statuses = []
        link = link_for(self.public_url, str(inv.get("id")))
        for target in self.targets:
            try:
                resp = httpx.post(
                    target.url, json=payload(target.format, inv, link), timeout=target.timeout_s
                )
                statuses.append(resp.status_code)
                if resp.status_code >= 400:
                    log.warning("notify %s answered HTTP %s", target.format, resp.status_code)
            except httpx.HTTPError as exc:
                log.warning("notify %s failed: %s", target.format, type(exc).__name__)
                statuses.append(0)
        return statuses
