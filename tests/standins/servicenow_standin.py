"""A stand-in ServiceNow Table API (no real instance can run here).

It checks requests the way an instance does, and stricter where a mistake would otherwise pass
silently: Basic or Bearer credentials (else 401 with ServiceNow's error body), an Accept header
naming JSON, a known table, known sysparm_* parameters, integer sysparm_limit/offset, every
sysparm_fields entry a real column, and a well-formed encoded query (`field<op>value` terms joined
by ^, ^OR, ORDERBY/ORDERBYDESC; dates as 'YYYY-MM-DD HH:MM:SS'; dot-walk only cmdb_ci.name).
A real instance ignores unknown fields in a query and returns every row; this one answers 400.
The query is evaluated on the records, pages are cut with limit/offset, and X-Total-Count and a
Link header come back like the real API's. sysparm_display_value=all/true/false shape the fields;
dates' display values are in the API user's zone (UTC-7), their values UTC, as on an instance.

Resolved incidents carry description, close_code, close_notes, resolved_at, business_service and
sys_updated_on; their work notes live in sys_journal_field (name=incident, element=work_notes,
element_id=the incident's sys_id, value, sys_created_on, sys_created_by), as on an instance, where
the incident row's own work_notes column is empty unless display values are asked for. The `IN`
operator takes a comma-separated list (`stateIN6,7`, `element_idINa,b`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tests.standins.itsm_base import ApiStandIn, Rejected, Reply, Request

SN_TIME = "%Y-%m-%d %H:%M:%S"
USER_TZ_OFFSET = timedelta(hours=-7)  # the API user's profile time zone, for display values
KNOWN_PARAMS = {
    "sysparm_query", "sysparm_fields", "sysparm_display_value", "sysparm_exclude_reference_link",
    "sysparm_limit", "sysparm_offset", "sysparm_view", "sysparm_no_count",
}  # fmt: skip
TABLES = {
    "incident": {
        "sys_id", "number", "short_description", "state", "priority", "cmdb_ci", "opened_at",
        "assignment_group", "active", "description", "close_code", "close_notes", "resolved_at",
        "business_service", "sys_updated_on", "category",
    },
    "change_request": {
        "sys_id", "number", "short_description", "state", "cmdb_ci", "start_date", "end_date", "risk",
        "active",
    },
    "sys_journal_field": {
        "sys_id", "name", "element", "element_id", "value", "sys_created_on", "sys_created_by",
    },
}  # fmt: skip
DATES = {"opened_at", "start_date", "end_date", "resolved_at", "sys_updated_on", "sys_created_on"}
TERM = re.compile(r"^([a-z_]+(?:\.name)?)(ISNOTEMPTY|ISEMPTY|<=|>=|!=|=|<|>|LIKE|STARTSWITH|IN)(.*)$")
INCIDENT_STATE = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed"}
CHANGE_STATE = {"-5": "New", "-2": "Scheduled", "-1": "Implement", "0": "Review", "3": "Closed"}
PRIORITY = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low"}
RISK = {"2": "High", "3": "Moderate", "4": "Low"}


@dataclass
class Field:
    value: str
    display: str


def _error(status: int, message: str, detail: str | None = None) -> Rejected:
    return Rejected(Reply(status, {"error": {"message": message, "detail": detail}, "status": "failure"}))


class ServiceNowStandIn(ApiStandIn):
    name = "servicenow"

    def __init__(
        self, *, username: str = "opscopilot", password: str = "s3cret", token: str | None = None
    ) -> None:
        super().__init__()
        self.username, self.password, self.token = username, password, token
        self.tables: dict[str, list[dict[str, Field]]] = {
            "incident": [],
            "change_request": [],
            "sys_journal_field": [],
        }
        self.forbidden_tables: set[str] = set()
        self.max_limit = 10000

    # --- data --------------------------------------------------------------------------------

    def _ref(self, name: str | None) -> Field:
        return Field(f"sysid-{name}", name) if name else Field("", "")

    def _date(self, ts: str | None) -> Field:
        if not ts:
            return Field("", "")
        utc = datetime.strptime(ts, SN_TIME)
        return Field(ts, (utc + USER_TZ_OFFSET).strftime("%m/%d/%Y %I:%M:%S %p"))

    def add_incident(
        self, number: str, text: str, *, state: str = "2", priority: str = "3", ci: str | None = None,
        opened_at: str | None = None, group: str | None = None, description: str = "",
        close_code: str = "", close_notes: str = "", resolved_at: str | None = None,
        service: str | None = None, updated_at: str | None = None, category: str = "",
    ) -> None:  # fmt: skip
        self.tables["incident"].append(
            {
                "description": Field(description, description),
                "close_code": Field(close_code, close_code),
                "close_notes": Field(close_notes, close_notes),
                "resolved_at": self._date(resolved_at),
                "business_service": self._ref(service),
                "sys_updated_on": self._date(updated_at or resolved_at or opened_at),
                "category": Field(category, category.title()),
                "sys_id": Field(f"inc-{number}", f"inc-{number}"),
                "number": Field(number, number),
                "short_description": Field(text, text),
                "state": Field(state, INCIDENT_STATE[state]),
                "priority": Field(priority, PRIORITY[priority]),
                "cmdb_ci": self._ref(ci),
                "opened_at": self._date(opened_at),
                "assignment_group": self._ref(group),
                "active": Field("false" if state in ("6", "7") else "true", ""),
            }
        )

    def add_work_note(self, number: str, text: str, *, at: str, by: str = "admin") -> None:
        """A work note on incident `number`, stored as ServiceNow does: a sys_journal_field row."""
        row = next(r for r in self.tables["incident"] if r["number"].value == number)
        journal = self.tables["sys_journal_field"]
        journal.append(
            {
                "sys_id": Field(f"jrn-{len(journal)}", f"jrn-{len(journal)}"),
                "name": Field("incident", "incident"),
                "element": Field("work_notes", "work_notes"),
                "element_id": Field(row["sys_id"].value, row["sys_id"].value),
                "value": Field(text, text),
                "sys_created_on": self._date(at),
                "sys_created_by": Field(by, by),
            }
        )

    def add_change(
        self, number: str, text: str, *, state: str = "-1", ci: str | None = None,
        start: str | None = None, end: str | None = None, risk: str = "3",
    ) -> None:  # fmt: skip
        self.tables["change_request"].append(
            {
                "sys_id": Field(f"chg-{number}", f"chg-{number}"),
                "number": Field(number, number),
                "short_description": Field(text, text),
                "state": Field(state, CHANGE_STATE[state]),
                "cmdb_ci": self._ref(ci),
                "start_date": self._date(start),
                "end_date": self._date(end),
                "risk": Field(risk, RISK[risk]),
                "active": Field("false" if state == "3" else "true", ""),
            }
        )

    # --- the API -----------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if self.token and auth == f"Bearer {self.token}":
            return True
        return request.basic() == (self.username, self.password)

    def handle(self, request: Request) -> Reply:
        if not self._authorised(request):
            raise _error(401, "User Not Authenticated", "Required to provide Auth information")
        if "application/json" not in request.headers.get("accept", ""):
            raise _error(406, "Not Acceptable", "this stand-in answers application/json only")
        match = re.fullmatch(r"/api/now/table/([a-z_]+)", request.path)
        if request.method != "GET" or not match:
            raise _error(400, f"Requested URI does not represent any resource: {request.path}")
        table = match.group(1)
        if table not in TABLES:
            raise _error(400, f"Invalid table {table}")
        if table in self.forbidden_tables:
            raise _error(403, "User Not Authorized", f"ACL denies read on {table}")
        unknown = sorted(set(request.query) - KNOWN_PARAMS)
        if unknown:
            raise _error(400, f"Unknown parameters {unknown}")
        limit, offset = self._int(request, "sysparm_limit", 10000), self._int(request, "sysparm_offset", 0)
        if not 1 <= limit <= self.max_limit or offset < 0:
            raise _error(400, f"sysparm_limit must be 1..{self.max_limit} and sysparm_offset >= 0")
        fields = [f for f in (request.one("sysparm_fields") or "").split(",") if f]
        bad = [f for f in fields if f not in TABLES[table]]
        if bad:
            raise _error(400, f"Invalid sysparm_fields {bad} for table {table}")
        display = request.one("sysparm_display_value", "false")
        if display not in ("true", "false", "all"):
            raise _error(400, f"Invalid sysparm_display_value {display!r}")
        rows = self.query(table, request.one("sysparm_query") or "")
        page = rows[offset : offset + limit]
        shown = fields or sorted(TABLES[table])
        result = [{f: self._shape(r[f], display) for f in shown} for r in page]
        return Reply(200, {"result": result}, self._paging_headers(request, len(rows), limit, offset))

    @staticmethod
    def _int(request: Request, name: str, default: int) -> int:
        text = request.one(name)
        if text is None:
            return default
        if not re.fullmatch(r"\d+", text):
            raise _error(400, f"{name} must be an integer, got {text!r}")
        return int(text)

    @staticmethod
    def _shape(f: Field, display: str) -> Any:
        if display == "all":
            return {"display_value": f.display, "value": f.value}
        return f.display if display == "true" else f.value

    def _paging_headers(self, request: Request, total: int, limit: int, offset: int) -> dict[str, str]:
        def link(at: int, rel: str) -> str:
            query = {k: v[-1] for k, v in request.query.items()} | {"sysparm_offset": str(at)}
            return f'<{self.url}{request.path}?{urlencode(query)}>;rel="{rel}"'

        links = [link(0, "first")]
        if offset + limit < total:
            links.append(link(offset + limit, "next"))
        links.append(link(max(0, (total - 1) // limit * limit), "last"))
        return {"X-Total-Count": str(total), "Link": ",".join(links)}

    # --- encoded queries ---------------------------------------------------------------------------

    def query(self, table: str, encoded: str) -> list[dict[str, Field]]:
        """Parse and evaluate an encoded query: AND of terms, ^OR joins a term to the one before."""
        groups: list[list[tuple[str, str, str]]] = []
        order: list[tuple[str, bool]] = []
        for term in _split(encoded):
            if term.startswith("ORDERBYDESC") or term.startswith("ORDERBY"):
                desc = term.startswith("ORDERBYDESC")
                column = term[len("ORDERBYDESC") if desc else len("ORDERBY") :]
                self._column(table, column)
                order.append((column, desc))
            elif term.startswith("NQ"):
                raise _error(400, "this stand-in does not support ^NQ queries")
            elif term.startswith("OR"):
                if not groups:
                    raise _error(400, f"Malformed query: ^OR without a term before it in {encoded!r}")
                groups[-1].append(self._condition(table, term[2:], encoded))
            else:
                groups.append([self._condition(table, term, encoded)])
        rows = [r for r in self.tables[table] if all(any(_holds(r, c) for c in g) for g in groups)]
        for column, desc in reversed(order):
            rows.sort(key=lambda r, c=column: r[c].value, reverse=desc)  # type: ignore[misc]
        return rows

    def _column(self, table: str, column: str) -> None:
        base = column.split(".")[0]
        if base not in TABLES[table] or (column != base and base != "cmdb_ci"):
            raise _error(400, f"Invalid field {column!r} in query for table {table}")

    def _condition(self, table: str, term: str, encoded: str) -> tuple[str, str, str]:
        m = TERM.match(term)
        if not m:
            raise _error(400, f"Malformed encoded query term {term!r} in {encoded!r}")
        column, op, value = m.groups()
        self._column(table, column)
        if op in ("ISEMPTY", "ISNOTEMPTY") and value:
            raise _error(400, f"{op} takes no value: {term!r}")
        if op == "IN" and not value:
            raise _error(400, f"IN needs a comma-separated list: {term!r}")
        if column in DATES and op not in ("ISEMPTY", "ISNOTEMPTY", "IN"):
            try:
                datetime.strptime(value, SN_TIME)
            except ValueError:
                raise _error(400, f"Invalid date {value!r} for {column}: use 'YYYY-MM-DD HH:MM:SS'") from None
        return column, op, value


def _split(encoded: str) -> list[str]:
    """Split on ^ but not on ^^ (an escaped caret inside a value)."""
    terms, current, i = [], "", 0
    while i < len(encoded):
        if encoded.startswith("^^", i):
            current, i = current + "^", i + 2
        elif encoded[i] == "^":
            terms.append(current)
            current, i = "", i + 1
        else:
            current, i = current + encoded[i], i + 1
    terms.append(current)
    return [t for t in terms if t]


def _holds(row: dict[str, Field], condition: tuple[str, str, str]) -> bool:
    column, op, value = condition
    f = row[column.split(".")[0]]
    actual = f.display if column.endswith(".name") else f.value
    if op == "ISEMPTY":
        return actual == ""
    if op == "ISNOTEMPTY":
        return actual != ""
    if op == "=":
        return actual == value
    if op == "IN":
        return actual in value.split(",")
    if op == "!=":
        return actual != value
    if op == "LIKE":
        return value.lower() in actual.lower()
    if op == "STARTSWITH":
        return actual.lower().startswith(value.lower())
    if actual == "":
        return False  # an empty date is neither before nor after anything
    return {"<=": actual <= value, ">=": actual >= value, "<": actual < value, ">": actual > value}[op]
