"""PagerDuty REST API v2: incidents as ItsmIncident, change events as ItsmChange, and who is on call.

Every request carries `Authorization: Token token=...` and
`Accept: application/vnd.pagerduty+json;version=2`; lists are paged with offset/limit until
`more` is false. Open incidents are `statuses[]=triggered&statuses[]=acknowledged` over
`date_range=all` (an incident opened weeks ago and still open counts); with `open_only=False`
resolved ones of the last 30 days are added. `service_ids` from the settings scope incidents
(server side) and change events (client side: /change_events has no service filter).

Mapping: number="PD-<incident_number>", short_description=title, state=status,
priority=priority.summary ("P1" ...) or else the urgency ("2 - high urgency" / "4 - low urgency"),
cmdb_ci=the service's name, opened_at=created_at, assignment_group=the escalation policy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel

from tools.estate import PagerDutyConfig
from tools.itsm.live import MAX_RECORDS, ApiError, ItsmClient, api_check
from tools.sources import SourceCheck
from tools.world import ItsmChange, ItsmIncident, parse_ts

log = logging.getLogger(__name__)

ACCEPT = "application/vnd.pagerduty+json;version=2"
URGENCY_PRIORITY = {"high": "2 - high urgency", "low": "4 - low urgency"}
RESOLVED_LOOKBACK = timedelta(days=30)
Params = list[tuple[str, str | int]]


class OnCall(BaseModel):
    """One on-call entry: who answers at which level of which escalation policy, and until when."""

    user: str
    email: str | None = None
    escalation_policy: str
    level: int
    schedule: str | None = None
    start: datetime | None = None
    end: datetime | None = None  # None: always on call (no schedule)


def _summary(ref: Any) -> str | None:
    return str(ref["summary"]) if isinstance(ref, dict) and ref.get("summary") else None


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PagerDutyItsm(ItsmClient):
    """Incidents, change events and on-call of one PagerDuty account (REST API key)."""

    name = "pagerduty"

    def __init__(
        self,
        cfg: PagerDutyConfig,
        *,
        page_size: int = 100,
        retries: int = 3,
        max_records: int = MAX_RECORDS,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if cfg.token is None:
            raise ValueError("PagerDuty needs token (a REST API key)")
        self.cfg = cfg
        self.page_size = min(page_size, 100)  # PagerDuty's maximum
        self.max_records = max_records
        self._clock = clock
        self._connect(
            "PagerDuty",
            cfg.url,
            cfg.timeout_s,
            headers={"Accept": ACCEPT, "Authorization": f"Token token={cfg.token.get_secret_value()}"},
            auth_hint="check pagerduty.token (a REST API key, read-only is enough)",
            retries=retries,
            transport=transport,
            sleep=sleep,
        )

    def pages(self, path: str, key: str, params: Params) -> list[dict[str, Any]]:
        """Every entry of a classic-paginated list (offset/limit/more), at most max_records."""
        out: list[dict[str, Any]] = []
        while len(out) < self.max_records:
            page = self.api.get(path, params=[*params, ("limit", self.page_size), ("offset", len(out))])
            batch = page.get(key) if isinstance(page, dict) else None
            if not isinstance(batch, list):
                raise ApiError(f"PagerDuty {path}: unexpected answer without a {key!r} list")
            out.extend(batch)
            if not page.get("more") or not batch:
                return out
        log.warning("pagerduty %s: more than %d entries, the rest were left out", path, self.max_records)
        return out[: self.max_records]

    def incidents(self, *, ci: str | None = None, open_only: bool = True) -> list[ItsmIncident]:
        params: Params = [("statuses[]", "triggered"), ("statuses[]", "acknowledged")]
        if open_only:
            params.append(("date_range", "all"))
        else:
            now = self._clock()
            params += [
                ("statuses[]", "resolved"),
                ("since", _iso(now - RESOLVED_LOOKBACK)),
                ("until", _iso(now)),
            ]
        params += [("service_ids[]", sid) for sid in self.cfg.service_ids]
        params.append(("sort_by", "created_at:desc"))
        found = [self._incident(i) for i in self.pages("/incidents", "incidents", params)]
        return [i for i in found if ci is None or (i.cmdb_ci or "").lower() == ci.lower()]

    def _incident(self, raw: dict[str, Any]) -> ItsmIncident:
        number = raw.get("incident_number")
        created = raw.get("created_at")
        return ItsmIncident(
            number=f"PD-{number}" if number is not None else str(raw.get("id") or "?"),
            short_description=str(raw.get("title") or raw.get("summary") or ""),
            state=raw.get("status"),
            priority=_summary(raw.get("priority")) or URGENCY_PRIORITY.get(str(raw.get("urgency"))),
            cmdb_ci=_summary(raw.get("service")),
            opened_at=parse_ts(created) if created else None,
            assignment_group=_summary(raw.get("escalation_policy")),
        )

    def changes(self, *, start: datetime, end: datetime, ci: str | None = None) -> list[ItsmChange]:
        """Change events (deploys, config pushes sent to PagerDuty) timestamped within [start, end]."""
        events = self.pages("/change_events", "change_events", [("since", _iso(start)), ("until", _iso(end))])
        wanted = set(self.cfg.service_ids)
        out = []
        for e in events:
            services = [s for s in e.get("services") or [] if isinstance(s, dict)]
            if wanted and not any(s.get("id") in wanted for s in services):
                continue
            service = _summary(services[0]) if services else None
            if ci is not None and (service or "").lower() != ci.lower():
                continue
            when = parse_ts(e["timestamp"]) if e.get("timestamp") else None
            out.append(
                ItsmChange(
                    number=str(e.get("id") or "?"),
                    short_description=str(e.get("summary") or ""),
                    state="completed",
                    cmdb_ci=service,
                    start_date=when,
                    end_date=when,
                )
            )
        return out

    def oncalls(self) -> list[OnCall]:
        """Who is on call now, first level first (one entry per user, policy and level)."""
        entries = self.pages("/oncalls", "oncalls", [("earliest", "true")])
        out = []
        for e in entries:
            user = e.get("user") or {}
            out.append(
                OnCall(
                    user=_summary(user) or str(user.get("name") or "?"),
                    email=user.get("email"),
                    escalation_policy=_summary(e.get("escalation_policy")) or "?",
                    level=int(e.get("escalation_level") or 0),
                    schedule=_summary(e.get("schedule")),
                    start=parse_ts(e["start"]) if e.get("start") else None,
                    end=parse_ts(e["end"]) if e.get("end") else None,
                )
            )
        return sorted(out, key=lambda o: (o.escalation_policy, o.level))

    def configuration_items(self) -> set[str]:
        """Service names: the configured services, or every service of the account (cached 5 minutes)."""

        def read() -> set[str]:
            if self.cfg.service_ids:
                services = [
                    self.api.get(f"/services/{sid}").get("service") or {} for sid in self.cfg.service_ids
                ]
            else:
                services = self.pages("/services", "services", [])
            return {str(s["name"]) for s in services if s.get("name")}

        return self._cis.get(read)

    def doctor(self) -> list[SourceCheck]:
        def probe() -> tuple[str, str | None]:
            self.api.get("/incidents", params=[("limit", 1), ("date_range", "all")])
            missing = []
            for sid in self.cfg.service_ids:
                try:
                    self.api.get(f"/services/{sid}")
                except ApiError as exc:
                    if exc.status not in (403, 404):
                        raise
                    missing.append(sid)
            if missing:
                return f"services not found: {', '.join(missing)}", f"check pagerduty.service_ids {missing}"
            return f"incidents readable; {len(self.cfg.service_ids) or 'all'} services in scope", None

        return [
            api_check(
                self.api,
                "pagerduty",
                probe,
                fix_401=self.api.auth_hint,
                fix_403="use a REST API key whose user can read incidents and services",
            )
        ]
