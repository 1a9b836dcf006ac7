"""create_ticket (a ServiceNow incident or a Jira issue carrying the investigation's summary and
evidence) and the work notes that write an outcome back to an ITSM record.

ServiceNow Table API: ``POST /api/now/table/incident`` (``sysparm_input_display_value=true`` so the
configuration item is given by name) with ``correlation_id`` = a key derived from the idempotency
key, which also finds the incident an interrupted attempt created; work notes are
``PATCH /api/now/table/{table}/{sys_id}`` with ``work_notes``. Jira: ``POST /rest/api/3/issue``
(Cloud, description in Atlassian Document Format) or ``/rest/api/2/issue`` (Server / Data Center,
plain text) with the labels ``opscopilot`` and one derived from the key; comments are
``POST /rest/api/{3|2}/issue/{key}/comment``. Dry run: nothing is sent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

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
from tools.actions.config import TicketsConfig
from tools.actions.http import ActionApi, ApiExecutor
from tools.base import escape_text
from tools.estate import JiraConfig, ServiceNowConfig

SN_NUMBER = re.compile(r"^(INC|CHG|PRB|RITM|TASK)\d{4,12}$")
SN_TABLES = {
    "INC": "incident",
    "CHG": "change_request",
    "PRB": "problem",
    "RITM": "sc_req_item",
    "TASK": "task",
}
JIRA_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,30}-[1-9][0-9]{0,9}$")
CLOUD_HOSTS = (".atlassian.net", ".jira.com")


def correlation(key: str) -> str:
    return f"opscopilot-{key[:40]}"


def _lookup(query: str) -> dict[str, str]:
    return {"sysparm_query": query, "sysparm_fields": "sys_id,number", "sysparm_limit": "1"}


def ticket_text(request: ActionRequest) -> tuple[str, list[str]]:
    """(short description, body lines): the headline, findings, evidence and who approved."""
    target = request.target
    short = (request.summary or request.proposal.reason or f"OpsCopilot: {target.entity}")[:160]
    approved = ", ".join(request.approvers) or "policy"
    lines = [
        f"Opened by OpsCopilot for investigation {request.thread_id} (approved by {approved}).",
        f"Entity: {target.entity}",
        f"Why: {request.proposal.reason}",
        "",
        "Findings:",
        *[f"- {f}" for f in request.findings[:10]],
        "",
        "Evidence:",
        *[f"- [{e.id}] {e.summary}" for e in request.evidence[:10]],
    ]
    return short, lines


class ServiceNowTickets(ApiExecutor):
    """create_ticket as a ServiceNow incident; work notes on incidents, changes and problems."""

    actions = ("create_ticket",)

    def __init__(
        self,
        sn: ServiceNowConfig,
        cfg: TicketsConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Accept": "application/json"}
        auth: tuple[str, str] | None = None
        if sn.token is not None:
            headers["Authorization"] = f"Bearer {sn.token.get_secret_value()}"
        elif sn.username and sn.password is not None:
            auth = (sn.username, sn.password.get_secret_value())
        else:
            raise ValueError("ServiceNow needs username and password, or token")
        self.cfg = cfg
        super().__init__(
            ActionApi(
                "ServiceNow",
                sn.url,
                headers=headers,
                timeout_s=cfg.request_timeout_s,
                auth_hint="check estate.servicenow credentials and that the user may create incidents (itil)",
                auth=auth,
                transport=transport,
                sleep=sleep,
            ),
            sleep=sleep,
        )

    def execute(self, request: ActionRequest) -> ExecutionResult:
        return run_guarded(request, lambda trail: self._create(request, trail))

    def _create(self, request: ActionRequest, trail: Trail) -> Done:
        target = request.target
        if target.kind != "ticket":
            raise Refused(f"create_ticket needs a ticket target, got a {target.kind} target")
        check_evidence(request)
        short, lines = ticket_text(request)
        record: dict[str, Any] = {
            "short_description": short,
            "description": "\n".join(lines),
            "cmdb_ci": target.entity,
            "urgency": "1" if request.severity == "critical" else "2",
            "impact": "2",
            "correlation_id": correlation(request.key),
            "correlation_display": "OpsCopilot",
        }
        if self.cfg.servicenow_assignment_group:
            record["assignment_group"] = self.cfg.servicenow_assignment_group
        if request.dry_run:
            return (
                "dry_run",
                f"dry run: would open a ServiceNow incident: {short}; nothing was sent",
                {"data": {"incident": record}},
            )
        params = {
            "sysparm_input_display_value": "true",
            "sysparm_fields": "sys_id,number",
            "sysparm_exclude_reference_link": "true",
        }
        created = (
            self.api.call("POST", "/api/now/table/incident", trail, json=record, params=params, ok=(201,))
            or {}
        ).get("result") or {}
        return self._opened(created, short)

    def _opened(self, created: dict[str, Any], short: str, reconciled: bool = False) -> Done:
        number = created.get("number")
        if not number:
            raise Failed(f"ServiceNow created an incident but named no number: {created}")
        url = f"{self.api.base_url}/nav_to.do?uri=incident.do?sys_id={created.get('sys_id', '')}"
        extra: dict[str, Any] = {
            "external_id": str(number),
            "external_url": url,
            "data": {"sys_id": created.get("sys_id")},
        }
        if reconciled:
            extra["reconciled"] = True
        return "executed", f"ServiceNow incident {number} opened: {short}", extra

    def reconcile(self, request: ActionRequest) -> ExecutionResult | None:
        trail = Trail()
        found = (
            self.api.call(
                "GET",
                "/api/now/table/incident",
                trail,
                params=_lookup(f"correlation_id={correlation(request.key)}"),
            )
            or {}
        )
        rows = found.get("result") or []
        if not rows:
            return None
        short, _ = ticket_text(request)
        return run_guarded(request, lambda t: self._opened(rows[0], short, True))

    def add_note(self, record: str, text: str, trail: Trail) -> str:
        m = SN_NUMBER.match(record)
        if not m:
            raise Refused(f"{escape_text(record)} is not a ServiceNow record number")
        table = SN_TABLES[m.group(1)]
        found = (
            self.api.call(
                "GET",
                f"/api/now/table/{table}",
                trail,
                params=_lookup(f"number={record}"),
            )
            or {}
        )
        rows = found.get("result") or []
        if not rows:
            raise Failed(f"ServiceNow has no {table} {record}")
        self.api.call(
            "PATCH",
            f"/api/now/table/{table}/{rows[0]['sys_id']}",
            trail,
            json={"work_notes": text},
            ok=(200,),
        )
        return f"work note added to ServiceNow {table} {record}"


def _adf(lines: list[str]) -> dict[str, Any]:
    """Plain lines as an Atlassian Document Format document (one paragraph per non-empty line)."""
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": line}]} for line in lines if line
        ],
    }


class JiraTickets(ApiExecutor):
    """create_ticket as a Jira issue; comments on issues."""

    actions = ("create_ticket",)

    def __init__(
        self,
        jira: JiraConfig,
        cfg: TicketsConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if jira.api_token is None:
            raise ValueError("Jira needs api_token")
        headers = {"Accept": "application/json"}
        token = jira.api_token.get_secret_value()
        auth = (jira.email, token) if jira.email else None
        if auth is None:
            headers["Authorization"] = f"Bearer {token}"
        host = urlparse(jira.url).hostname or ""
        self.version = "3" if host.endswith(CLOUD_HOSTS) else "2"
        self.cfg = cfg
        self.project = cfg.jira_project or (jira.projects[0] if jira.projects else None)
        super().__init__(
            ActionApi(
                "Jira",
                jira.url,
                headers=headers,
                timeout_s=cfg.request_timeout_s,
                auth_hint="check estate.jira (email and api_token) and that the user may create issues",
                auth=auth,
                transport=transport,
                sleep=sleep,
            ),
            sleep=sleep,
        )

    def execute(self, request: ActionRequest) -> ExecutionResult:
        return run_guarded(request, lambda trail: self._create(request, trail))

    def _label(self, key: str) -> str:
        return f"opscopilot-{key[:16]}"

    def _body(self, lines: list[str]) -> Any:
        return _adf(lines) if self.version == "3" else "\n".join(lines)

    def _create(self, request: ActionRequest, trail: Trail) -> Done:
        target = request.target
        if target.kind != "ticket":
            raise Refused(f"create_ticket needs a ticket target, got a {target.kind} target")
        if not self.project:
            raise Refused("no Jira project for tickets: set actions.tickets.jira_project")
        check_evidence(request)
        short, lines = ticket_text(request)
        fields = {
            "project": {"key": self.project},
            "issuetype": {"name": self.cfg.jira_issue_type},
            "summary": short.replace("\n", " ")[:255],
            "description": self._body(lines),
            "labels": ["opscopilot", self._label(request.key)],
        }
        if request.dry_run:
            return (
                "dry_run",
                f"dry run: would open a Jira {self.cfg.jira_issue_type} in {self.project}: {short}; "
                "nothing was sent",
                {"data": {"fields": fields}},
            )
        created = (
            self.api.call(
                "POST", f"/rest/api/{self.version}/issue", trail, json={"fields": fields}, ok=(201,)
            )
            or {}
        )
        return self._opened(created, short)

    def _opened(self, created: dict[str, Any], short: str, reconciled: bool = False) -> Done:
        key = created.get("key")
        if not key:
            raise Failed(f"Jira created an issue but named no key: {created}")
        extra: dict[str, Any] = {"external_id": str(key), "external_url": f"{self.api.base_url}/browse/{key}"}
        if reconciled:
            extra["reconciled"] = True
        return "executed", f"Jira issue {key} opened: {short}", extra

    def reconcile(self, request: ActionRequest) -> ExecutionResult | None:
        trail = Trail()
        if not self.project:
            return None
        # Jira Cloud refuses unbounded JQL: the project bounds it
        jql = f'project = "{self.project}" AND labels = "{self._label(request.key)}"'
        if self.version == "3":
            page = self.api.call(
                "POST",
                "/rest/api/3/search/jql",
                trail,
                json={"jql": jql, "fields": ["summary"], "maxResults": 1},
            )
        else:
            page = self.api.call(
                "GET", "/rest/api/2/search", trail, params={"jql": jql, "fields": "summary", "maxResults": 1}
            )
        issues = (page or {}).get("issues") or []
        if not issues:
            return None
        short, _ = ticket_text(request)
        return run_guarded(request, lambda t: self._opened(issues[0], short, True))

    def add_note(self, record: str, text: str, trail: Trail) -> str:
        if not JIRA_KEY.match(record):
            raise Refused(f"{escape_text(record)} is not a Jira issue key")
        self.api.call(
            "POST",
            f"/rest/api/{self.version}/issue/{record}/comment",
            trail,
            json={"body": self._body(text.splitlines())},
            ok=(201,),
        )
        return f"comment added to Jira issue {record}"


class WorkNotes:
    """Writes an outcome back to an ITSM record: ServiceNow numbers (INC0012345) go to ServiceNow,
    Jira keys (OPS-42) to Jira; other records (PagerDuty incidents) are not written."""

    def __init__(self, servicenow: ServiceNowTickets | None = None, jira: JiraTickets | None = None) -> None:
        self.servicenow, self.jira = servicenow, jira

    def writable(self, record: str) -> bool:
        return bool((self.servicenow and SN_NUMBER.match(record)) or (self.jira and JIRA_KEY.match(record)))

    def add(self, record: str, text: str) -> tuple[str, list[str]]:
        """(what was done, steps tried); Failed or Refused when the note cannot be written."""
        trail = Trail()
        if self.servicenow is not None and SN_NUMBER.match(record):
            return self.servicenow.add_note(record, text, trail), trail.steps
        if self.jira is not None and JIRA_KEY.match(record):
            return self.jira.add_note(record, text, trail), trail.steps
        raise Refused(f"no configured ITSM system takes notes on {escape_text(record)}")
