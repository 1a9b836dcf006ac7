"""Stand-ins for the write side of ServiceNow and Jira (no instance of either can run here).

ServiceNow Table API writes: Basic or Bearer auth (401 otherwise), ``Accept`` naming JSON (406),
``Content-Type: application/json`` on writes (415), only real incident columns in a body (400 for an
unknown one, as an instance ignores it silently; stricter so a typo fails), ``short_description`` at
most 160 characters, known ``sysparm_*`` parameters; ``POST /api/now/table/incident`` creates the
record (201, ``{"result": {...}}`` with a new number and sys_id; the CI taken by name when
``sysparm_input_display_value=true``, otherwise it must be a sys_id); ``GET`` with a
``sysparm_query`` of ``field=value`` terms; ``PATCH /api/now/table/{table}/{sys_id}`` appends
``work_notes`` to the record's journal (200).

Jira: the read stand-in (tests/standins/jira_standin.py, JQL and search) plus ``POST
/rest/api/{2,3}/issue`` (a known project, an issue type it has, a one-line summary of at most 255
characters, labels without spaces, the description in Atlassian Document Format for v3 and a
string for v2; 400 with ``errors`` otherwise; 201 ``{id, key, self}``) and ``POST .../comment``.
"""

from __future__ import annotations

import re
from typing import Any

from tests.standins.itsm_base import ApiStandIn, Rejected, Reply, Request
from tests.standins.jira_standin import Issue, JiraStandIn

INCIDENT_COLUMNS = {
    "short_description", "description", "cmdb_ci", "urgency", "impact", "priority", "state", "category",
    "assignment_group", "assigned_to", "caller_id", "correlation_id", "correlation_display", "work_notes",
    "comments",
}  # fmt: skip
PARAMS = {"sysparm_query", "sysparm_fields", "sysparm_limit", "sysparm_display_value",
          "sysparm_exclude_reference_link", "sysparm_input_display_value"}  # fmt: skip


def _sn_error(status: int, message: str, detail: str | None = None) -> Rejected:
    return Rejected(Reply(status, {"error": {"message": message, "detail": detail}, "status": "failure"}))


class ServiceNowWriteStandIn(ApiStandIn):
    name = "servicenow-write"

    def __init__(
        self, *, username: str = "opscopilot", password: str = "s3cret", cis: set[str] | None = None
    ):
        super().__init__()
        self.username, self.password = username, password
        self.cis = cis or set()
        self.records: dict[str, list[dict[str, Any]]] = {"incident": [], "change_request": []}
        self.journal: dict[str, list[str]] = {}  # sys_id -> work notes

    def add_record(self, table: str, number: str, **fields: Any) -> dict[str, Any]:
        row = {"sys_id": f"{table[:3]}{len(self.records[table]) + 1:05d}", "number": number, **fields}
        self.records[table].append(row)
        return row

    def handle(self, request: Request) -> Reply:
        if request.basic() != (self.username, self.password):
            raise _sn_error(401, "User Not Authenticated", "Required to provide Auth information")
        if "application/json" not in request.headers.get("accept", ""):
            raise _sn_error(406, "Not Acceptable")
        if request.method in ("POST", "PATCH") and not request.headers.get("content-type", "").startswith(
            "application/json"
        ):
            raise _sn_error(415, "Unsupported Media Type")
        unknown = sorted(set(request.query) - PARAMS)
        if unknown:
            raise _sn_error(400, f"Unknown parameters {unknown}")
        m = re.fullmatch(r"/api/now/table/([a-z_]+)(?:/(\w+))?", request.path)
        if not m or m.group(1) not in self.records:
            raise _sn_error(400, f"Requested URI does not represent any resource: {request.path}")
        table, sys_id = m.groups()
        if request.method == "GET" and sys_id is None:
            return Reply(200, {"result": self._query(table, request)})
        if request.method == "POST" and sys_id is None:
            return self._insert(table, request)
        if request.method == "PATCH" and sys_id is not None:
            return self._update(table, sys_id, request)
        raise _sn_error(405, f"Method {request.method} not supported here")

    def _fields(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or "_malformed" in body:
            raise _sn_error(400, "Exception while reading request", "The payload is not valid JSON")
        bad = sorted(set(body) - INCIDENT_COLUMNS)
        if bad:
            raise _sn_error(400, f"Invalid fields {bad}")
        if len(str(body.get("short_description", ""))) > 160:
            raise _sn_error(400, "short_description is longer than 160 characters")
        return body

    def _insert(self, table: str, request: Request) -> Reply:
        body = self._fields(request.body)
        if "cmdb_ci" in body:
            by_name = request.one("sysparm_input_display_value") == "true"
            if by_name and body["cmdb_ci"] not in self.cis:
                raise _sn_error(400, f"Invalid reference: no configuration item named {body['cmdb_ci']!r}")
            if not by_name and not re.fullmatch(r"[0-9a-f]{32}", str(body["cmdb_ci"])):
                raise _sn_error(400, "cmdb_ci must be a sys_id unless sysparm_input_display_value=true")
        number = f"INC00{20001 + len(self.records[table])}"
        notes = body.pop("work_notes", None)
        row = self.add_record(table, number, **body)
        if notes:
            self.journal.setdefault(row["sys_id"], []).append(notes)
        return Reply(201, {"result": self._shape(row, request)})

    def _update(self, table: str, sys_id: str, request: Request) -> Reply:
        body = self._fields(request.body)
        for row in self.records[table]:
            if row["sys_id"] == sys_id:
                if "work_notes" in body:
                    self.journal.setdefault(sys_id, []).append(str(body.pop("work_notes")))
                row.update(body)
                return Reply(200, {"result": self._shape(row, request)})
        raise _sn_error(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")

    def _query(self, table: str, request: Request) -> list[dict[str, Any]]:
        rows = self.records[table]
        for term in (request.one("sysparm_query") or "").split("^"):
            if not term:
                continue
            column, sep, value = term.partition("=")
            if not sep or column not in {*INCIDENT_COLUMNS, "number", "sys_id"}:
                raise _sn_error(400, f"Invalid query term {term!r}")
            rows = [r for r in rows if str(r.get(column, "")) == value]
        limit = int(request.one("sysparm_limit") or 10000)
        return [self._shape(r, request) for r in rows[:limit]]

    @staticmethod
    def _shape(row: dict[str, Any], request: Request) -> dict[str, Any]:
        fields = [f for f in (request.one("sysparm_fields") or "").split(",") if f]
        return {f: row.get(f, "") for f in fields} if fields else dict(row)


class JiraWriteStandIn(JiraStandIn):
    name = "jira-write"

    def __init__(self, *, issue_types: tuple[str, ...] = ("Task", "Incident"), **kw: Any) -> None:
        super().__init__(**kw)
        self.issue_types = issue_types
        self.created: list[dict[str, Any]] = []
        self.comments: dict[str, list[Any]] = {}

    def handle(self, request: Request) -> Reply:
        m = re.fullmatch(r"/rest/api/([23])/issue(?:/([A-Z][A-Z0-9_]*-\d+)/comment)?", request.path)
        if request.method != "POST" or not m:
            return super().handle(request)
        if request.basic() != (self.email, self.api_token):
            raise Rejected(Reply(401, {"errorMessages": ["You are not authenticated."]}))
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise Rejected(Reply(415, {"errorMessages": ["Unsupported Media Type"]}))
        version, key = m.groups()
        body = request.body if isinstance(request.body, dict) else {}
        if key:
            if not any(i.key == key for i in self.issues):
                raise Rejected(
                    Reply(
                        404,
                        {"errorMessages": ["Issue does not exist or you do not have permission to see it."]},
                    )
                )
            problem = self._text(version, body.get("body"), "body")
            if problem:
                raise Rejected(Reply(400, {"errorMessages": [], "errors": {"comment": problem}}))
            self.comments.setdefault(key, []).append(body["body"])
            return Reply(201, {"id": str(len(self.comments[key])), "body": body["body"]})
        return self._create(version, body)

    @staticmethod
    def _text(version: str, value: Any, name: str) -> str | None:
        if version == "2":
            return None if isinstance(value, str) else f"{name} must be a string in API v2"
        if not (isinstance(value, dict) and value.get("type") == "doc" and value.get("version") == 1):
            return f"{name}: Operation value must be an Atlassian Document (type doc, version 1)"
        for block in value.get("content") or []:
            if block.get("type") != "paragraph" or not all(
                n.get("type") == "text" and isinstance(n.get("text"), str) and n["text"]
                for n in block.get("content") or []
            ):
                return f"{name}: only paragraphs of non-empty text are accepted by this stand-in"
        return None

    def _create(self, version: str, body: dict[str, Any]) -> Reply:
        fields = body.get("fields")
        if not isinstance(fields, dict):
            raise Rejected(Reply(400, {"errorMessages": ["fields is required"], "errors": {}}))
        errors: dict[str, str] = {}
        project = (fields.get("project") or {}).get("key")
        if project not in self.components:
            errors["project"] = "valid project is required"
        if (fields.get("issuetype") or {}).get("name") not in self.issue_types:
            errors["issuetype"] = "Specify a valid issue type"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary or "\n" in summary or len(summary) > 255:
            errors["summary"] = "Summary must be one line of at most 255 characters."
        labels = fields.get("labels") or []
        if any(not isinstance(label, str) or " " in label for label in labels):
            errors["labels"] = "Labels cannot contain spaces"
        if "description" in fields and (problem := self._text(version, fields["description"], "description")):
            errors["description"] = problem
        if errors:
            raise Rejected(Reply(400, {"errorMessages": [], "errors": errors}))
        assert isinstance(summary, str)  # a summary that is not one was rejected above
        key = f"{project}-{500 + len(self.created) + 1}"
        self.created.append({"key": key, **fields})
        self.issues.append(Issue(key, summary, labels=list(labels), created="2026-07-08T10:00:00.000+0000"))
        return Reply(
            201,
            {
                "id": str(10000 + len(self.created)),
                "key": key,
                "self": f"{self.url}/rest/api/{version}/issue/{key}",
            },
        )
