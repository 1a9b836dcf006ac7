"""A stand-in PagerDuty REST API v2 (no real account can be reached from here).

It checks requests like PagerDuty does: `Authorization: Token token=<key>` (else 401 with
PagerDuty's error body), `Accept: application/vnd.pagerduty+json;version=2`, known query
parameters per endpoint, statuses[] from triggered|acknowledged|resolved, ISO-8601 since/until,
limit 1..100 and a non-negative offset (PagerDuty's classic pagination). It serves /incidents
(filtered by status, service and created_at within since/until unless date_range=all),
/oncalls, /change_events and /services, each paged with limit/offset/more.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.standins.itsm_base import ApiStandIn, Rejected, Reply, Request

ACCEPT = "application/vnd.pagerduty+json;version=2"
STATUSES = {"triggered", "acknowledged", "resolved"}
COMMON = {"limit", "offset", "total", "time_zone", "include[]"}
PARAMS = {
    "/incidents": COMMON | {
        "statuses[]", "service_ids[]", "team_ids[]", "user_ids[]", "urgencies[]", "since", "until",
        "date_range", "sort_by", "incident_key",
    },
    "/oncalls": COMMON | {
        "earliest", "escalation_policy_ids[]", "schedule_ids[]", "user_ids[]", "since", "until",
    },
    "/change_events": COMMON | {"since", "until", "team_ids[]", "integration_ids[]"},
    "/services": COMMON | {"query", "team_ids[]", "sort_by"},
}  # fmt: skip


def _error(status: int, message: str, code: int, *errors: str) -> Rejected:
    return Rejected(Reply(status, {"error": {"message": message, "code": code, "errors": list(errors)}}))


def _when(text: str, name: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _error(400, "Invalid Input Provided", 2001, f"{name} is not a valid ISO 8601 date") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


class PagerDutyStandIn(ApiStandIn):
    name = "pagerduty"

    def __init__(self, *, token: str = "pd-token", now: datetime | None = None) -> None:
        super().__init__()
        self.token = token
        self.now = now or datetime.now(UTC)
        self.incidents: list[dict[str, Any]] = []
        self.oncalls: list[dict[str, Any]] = []
        self.change_events: list[dict[str, Any]] = []
        self.services: dict[str, str] = {}  # id -> name

    def add_incident(
        self, number: int, title: str, *, status: str = "triggered", service: str = "PSVC1",
        urgency: str = "high", priority: str | None = None, created_at: str = "2026-07-08T09:30:00Z",
        policy: str = "Payments on-call",
    ) -> None:  # fmt: skip
        self.incidents.append(
            {
                "id": f"Q{number:06d}",
                "type": "incident",
                "incident_number": number,
                "title": title,
                "status": status,
                "urgency": urgency,
                "priority": {"id": "PRI", "type": "priority", "summary": priority} if priority else None,
                "service": {"id": service, "type": "service_reference", "summary": self.services[service]},
                "escalation_policy": {"id": "PEP1", "type": "escalation_policy_reference", "summary": policy},
                "created_at": created_at,
            }
        )

    def handle(self, request: Request) -> Reply:
        auth = request.headers.get("authorization", "")
        if auth != f"Token token={self.token}":
            raise _error(401, "Unauthorized", 2006)
        if request.headers.get("accept", "").replace(" ", "") != ACCEPT:
            raise _error(406, "Not Acceptable", 2001, f"Accept must be {ACCEPT}")
        if request.method != "GET":
            raise _error(405, "Method Not Allowed", 2001)
        m = re.fullmatch(r"/services/(P\w+)", request.path)
        if m:
            if m.group(1) not in self.services:
                raise _error(404, "Not Found", 2100)
            return Reply(200, {"service": {"id": m.group(1), "name": self.services[m.group(1)]}})
        allowed = PARAMS.get(request.path)
        if allowed is None:
            raise _error(404, "Not Found", 2100)
        unknown = sorted(set(request.query) - allowed)
        if unknown:
            raise _error(400, "Invalid Input Provided", 2001, f"unknown parameters {unknown}")
        try:
            limit, offset = int(request.one("limit") or 25), int(request.one("offset") or 0)
        except ValueError:
            raise _error(400, "Invalid Input Provided", 2001, "limit and offset must be integers") from None
        if not 1 <= limit <= 100 or offset < 0:
            raise _error(400, "Invalid Input Provided", 2001, "limit must be 1..100, offset >= 0")
        key, entries = {
            "/incidents": ("incidents", self._incidents),
            "/oncalls": ("oncalls", lambda r: list(self.oncalls)),
            "/change_events": ("change_events", self._change_events),
            "/services": ("services", lambda r: [{"id": i, "name": n} for i, n in self.services.items()]),
        }[request.path]
        found = entries(request)
        page = found[offset : offset + limit]
        more = offset + len(page) < len(found)
        return Reply(200, {key: page, "limit": limit, "offset": offset, "more": more, "total": None})

    def _window(self, request: Request) -> tuple[datetime, datetime]:
        until = _when(request.one("until") or self.now.isoformat(), "until")
        since = _when(request.one("since") or (until - timedelta(days=30)).isoformat(), "since")
        if since > until:
            raise _error(400, "Invalid Input Provided", 2001, "since must be before until")
        return since, until

    def _incidents(self, request: Request) -> list[dict[str, Any]]:
        statuses = set(request.query.get("statuses[]", [])) or {"triggered", "acknowledged", "resolved"}
        if statuses - STATUSES:
            raise _error(400, "Invalid Input Provided", 2001, f"statuses[] {sorted(statuses - STATUSES)}")
        services = set(request.query.get("service_ids[]", []))
        every_date = request.one("date_range") == "all"
        if request.one("date_range") not in (None, "all"):
            raise _error(400, "Invalid Input Provided", 2001, "date_range must be 'all'")
        since, until = self._window(request)
        sort = request.one("sort_by") or "created_at:asc"
        if not re.fullmatch(r"(incident_number|created_at|resolved_at|urgency)(:(asc|desc))?", sort):
            raise _error(400, "Invalid Input Provided", 2001, f"sort_by {sort!r}")
        found = [
            i
            for i in self.incidents
            if i["status"] in statuses
            and (not services or i["service"]["id"] in services)
            and (every_date or since <= _when(i["created_at"], "created_at") <= until)
        ]
        column, _, direction = sort.partition(":")
        return sorted(found, key=lambda i: str(i[column]), reverse=direction == "desc")

    def _change_events(self, request: Request) -> list[dict[str, Any]]:
        since, until = self._window(request)
        return [e for e in self.change_events if since <= _when(e["timestamp"], "timestamp") <= until]
