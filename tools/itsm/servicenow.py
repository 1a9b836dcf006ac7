"""ServiceNow Table API: open incidents and change requests overlapping a window, as ItsmIncident
and ItsmChange (the SPEC's field names are ServiceNow's own).

Queries are encoded queries (`sysparm_query`): `active=true^cmdb_ci.name=X^ORDERBYDESCopened_at`
for incidents and `start_date<=END^end_date>=START^ORend_dateISEMPTY` for changes, with plain
'YYYY-MM-DD HH:MM:SS' values, which ServiceNow compares with its stored UTC values
(`javascript:gs.dateGenerate` would read them in the API user's time zone instead). Records are
read with `sysparm_display_value=all`: choice and reference fields (state, priority, cmdb_ci,
assignment_group) take their display value, dates their UTC value (display values of dates are
in the user's time zone and format). Pages of `page_size` rows are followed with sysparm_offset
until a short page.

For the knowledge base, `resolved_incidents(since)` reads incidents in state Resolved or Closed
updated since a time (`stateIN6,7^sys_updated_on>=...^ORDERBYsys_updated_on`) with their
description, close code and close notes, and their work notes from sys_journal_field (where
ServiceNow keeps journal entries: name=incident, element=work_notes, element_id=the sys_id), read
for up to JOURNAL_BATCH incidents per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tools.estate import ServiceNowConfig
from tools.itsm.history import ResolvedTicket, TicketNote
from tools.itsm.live import MAX_RECORDS, ApiError, ItsmClient, api_check
from tools.sources import SourceCheck
from tools.world import ItsmChange, ItsmIncident

log = logging.getLogger(__name__)

INCIDENT_FIELDS = [
    "number",
    "short_description",
    "state",
    "priority",
    "cmdb_ci",
    "opened_at",
    "assignment_group",
]
CHANGE_FIELDS = ["number", "short_description", "state", "cmdb_ci", "start_date", "end_date", "risk"]
RESOLVED_FIELDS = [
    "sys_id", "number", "short_description", "description", "close_code", "close_notes", "cmdb_ci",
    "business_service", "category", "priority", "opened_at", "resolved_at", "sys_updated_on",
]  # fmt: skip
JOURNAL_FIELDS = ["element_id", "value", "sys_created_on", "sys_created_by"]
JOURNAL_BATCH = 50
RESOLVED_STATES = "6,7"  # Resolved, Closed
DATE_FIELDS = {"opened_at", "start_date", "end_date", "resolved_at", "sys_updated_on", "sys_created_on"}
SN_TIME = "%Y-%m-%d %H:%M:%S"
CI_LOOKBACK = timedelta(days=30)  # configuration_items(): CIs of open incidents and of recent changes


def sn_time(ts: datetime) -> str:
    """A datetime as ServiceNow's internal UTC 'YYYY-MM-DD HH:MM:SS'."""
    return ts.astimezone(UTC).strftime(SN_TIME)


def encoded(value: str) -> str:
    """A value inside an encoded query: '^' separates terms, so a literal one is doubled."""
    return value.replace("^", "^^").replace("\n", " ")


def _field(row: dict[str, Any], name: str) -> str | None:
    raw = row.get(name)
    if isinstance(raw, dict):  # sysparm_display_value=all: {"display_value": ..., "value": ...}
        raw = raw.get("value") if name in DATE_FIELDS else (raw.get("display_value") or raw.get("value"))
    text = "" if raw is None else str(raw).strip()
    return text or None


def _date(row: dict[str, Any], name: str) -> datetime | None:
    text = _field(row, name)
    if text is None:
        return None
    try:
        return datetime.strptime(text, SN_TIME).replace(tzinfo=UTC)
    except ValueError:
        log.warning("servicenow: unexpected %s %r on %s, ignored", name, text, row.get("number"))
        return None


class ServiceNowItsm(ItsmClient):
    """Incidents and change requests from one ServiceNow instance (basic auth or OAuth bearer)."""

    name = "servicenow"

    def __init__(
        self,
        cfg: ServiceNowConfig,
        *,
        retries: int = 3,
        max_records: int = MAX_RECORDS,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if cfg.token is not None:
            auth, headers = None, {"Authorization": f"Bearer {cfg.token.get_secret_value()}"}
            hint = "check the OAuth bearer token (servicenow.token) and that it has not expired"
        elif cfg.username and cfg.password is not None:
            auth, headers = (cfg.username, cfg.password.get_secret_value()), {}
            hint = f"check servicenow.username ({cfg.username!r}) and servicenow.password"
        else:
            raise ValueError("ServiceNow needs username and password, or token")
        self.cfg = cfg
        self.max_records = max_records
        self._connect(
            "ServiceNow",
            cfg.url,
            cfg.timeout_s,
            headers=headers,
            auth=auth,
            auth_hint=hint,
            retries=retries,
            transport=transport,
            sleep=sleep,
        )

    def rows(self, table: str, query: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row of `table` matching the encoded `query`, page by page, at most max_records."""
        limit = min(self.cfg.page_size, self.max_records)
        out: list[dict[str, Any]] = []
        while len(out) < self.max_records:
            page = self.api.get(
                f"/api/now/table/{table}",
                params={
                    "sysparm_query": query,
                    "sysparm_fields": ",".join(fields),
                    "sysparm_display_value": "all",
                    "sysparm_exclude_reference_link": "true",
                    "sysparm_limit": str(limit),
                    "sysparm_offset": str(len(out)),
                },
            )
            result = page.get("result") if isinstance(page, dict) else None
            if not isinstance(result, list):
                raise ApiError(f"ServiceNow {table}: unexpected answer without a 'result' list")
            out.extend(result)
            if len(result) < limit:
                return out
        log.warning(
            "servicenow %s: more than %d rows for %r, the oldest were left out",
            table,
            self.max_records,
            query,
        )
        return out[: self.max_records]

    def incidents(self, *, ci: str | None = None, open_only: bool = True) -> list[ItsmIncident]:
        terms = (["active=true"] if open_only else []) + ([f"cmdb_ci.name={encoded(ci)}"] if ci else [])
        rows = self.rows("incident", "^".join([*terms, "ORDERBYDESCopened_at"]), INCIDENT_FIELDS)
        return [
            ItsmIncident(
                number=_field(r, "number") or "?",
                short_description=_field(r, "short_description") or "",
                state=_field(r, "state"),
                priority=_field(r, "priority"),
                cmdb_ci=_field(r, "cmdb_ci"),
                opened_at=_date(r, "opened_at"),
                assignment_group=_field(r, "assignment_group"),
            )
            for r in rows
        ]

    def changes(self, *, start: datetime, end: datetime, ci: str | None = None) -> list[ItsmChange]:
        terms = [f"start_date<={sn_time(end)}", f"end_date>={sn_time(start)}", "ORend_dateISEMPTY"]
        terms += [f"cmdb_ci.name={encoded(ci)}"] if ci else []
        rows = self.rows("change_request", "^".join([*terms, "ORDERBYDESCstart_date"]), CHANGE_FIELDS)
        return [
            ItsmChange(
                number=_field(r, "number") or "?",
                short_description=_field(r, "short_description") or "",
                state=_field(r, "state"),
                cmdb_ci=_field(r, "cmdb_ci"),
                start_date=_date(r, "start_date"),
                end_date=_date(r, "end_date"),
                risk=_field(r, "risk"),
            )
            for r in rows
        ]

    def resolved_incidents(self, since: datetime | None = None) -> list[ResolvedTicket]:
        """Resolved and closed incidents updated at or after `since` (all without), oldest update
        first, with their close notes and work notes."""
        terms = [f"stateIN{RESOLVED_STATES}"] + ([f"sys_updated_on>={sn_time(since)}"] if since else [])
        rows = self.rows("incident", "^".join([*terms, "ORDERBYsys_updated_on"]), RESOLVED_FIELDS)
        notes = self._work_notes([str(_field(r, "sys_id")) for r in rows if _field(r, "sys_id")])
        base = self.cfg.url.rstrip("/")
        out = []
        for r in rows:
            sys_id = _field(r, "sys_id") or ""
            out.append(
                ResolvedTicket(
                    system="servicenow",
                    number=_field(r, "number") or sys_id,
                    title=_field(r, "short_description") or "",
                    description=_field(r, "description") or "",
                    resolution=_field(r, "close_notes") or "",
                    close_code=_field(r, "close_code"),
                    cis=[n for n in [_field(r, "cmdb_ci")] if n],
                    services=[n for n in [_field(r, "business_service")] if n],
                    labels=[n for n in [_field(r, "category")] if n],
                    priority=_field(r, "priority"),
                    opened_at=_date(r, "opened_at"),
                    resolved_at=_date(r, "resolved_at"),
                    updated_at=_date(r, "sys_updated_on"),
                    notes=notes.get(sys_id, []),
                    url=f"{base}/nav_to.do?uri=incident.do?sys_id={sys_id}",
                )
            )
        return out

    def _work_notes(self, sys_ids: list[str]) -> dict[str, list[TicketNote]]:
        """Work notes per incident sys_id, oldest first, from sys_journal_field."""
        found: dict[str, list[TicketNote]] = {}
        for start in range(0, len(sys_ids), JOURNAL_BATCH):
            chunk = sys_ids[start : start + JOURNAL_BATCH]
            query = f"name=incident^element=work_notes^element_idIN{','.join(chunk)}^ORDERBYsys_created_on"
            for row in self.rows("sys_journal_field", query, JOURNAL_FIELDS):
                text = _field(row, "value")
                if text:
                    found.setdefault(str(_field(row, "element_id")), []).append(
                        TicketNote(
                            text=text, at=_date(row, "sys_created_on"), by=_field(row, "sys_created_by")
                        )
                    )
        return found

    def configuration_items(self) -> set[str]:
        """CIs named on active incidents and on changes of the last 30 days (cached 5 minutes)."""

        def read() -> set[str]:
            since = sn_time(datetime.now(UTC) - CI_LOOKBACK)
            rows = self.rows("incident", "active=true^cmdb_ciISNOTEMPTY", ["cmdb_ci"])
            rows += self.rows(
                "change_request", f"end_date>={since}^ORend_dateISEMPTY^cmdb_ciISNOTEMPTY", ["cmdb_ci"]
            )
            return {n for n in (_field(r, "cmdb_ci") for r in rows) if n}

        return self._cis.get(read)

    def doctor(self) -> list[SourceCheck]:
        def probe() -> tuple[str, str | None]:
            denied = []
            for table in ("incident", "change_request"):
                try:
                    self.api.get(
                        f"/api/now/table/{table}", params={"sysparm_limit": "1", "sysparm_fields": "number"}
                    )
                except ApiError as exc:
                    if exc.status != 403:
                        raise
                    denied.append(table)
            if denied:
                return (
                    f"cannot read {', '.join(denied)}",
                    f"grant read on {', '.join(denied)} (e.g. role itil)",
                )
            return "incident and change_request tables readable", None

        return [
            api_check(
                self.api,
                "servicenow",
                probe,
                fix_401=self.api.auth_hint,
                fix_403="grant the integration user read on incident and change_request (e.g. role itil)",
            )
        ]
