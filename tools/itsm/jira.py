"""Jira (Cloud or Server/Data Center): issues of the configured projects as ItsmIncident.

Search endpoints:
- Cloud (`*.atlassian.net`, or `api="cloud"`): POST /rest/api/3/search/jql, paged with
  `nextPageToken` until `isLast` (Atlassian removed the offset-paged /search on Cloud).
- Server/Data Center (other hosts, or `api="server"`): GET /rest/api/2/search, paged with
  `startAt`/`maxResults` until `total` is reached.
Auth: basic `email:api_token` (Cloud; or username:password on Server), or a bearer personal
access token when only `api_token` is set (Server/Data Center).

Mapping: number=key, short_description=summary, state=status.name, priority=priority.name
prefixed with its rank in Jira's default schemes ("1 - Highest" ... "5 - Lowest", "1 - Blocker"
... "5 - Trivial") so the ITSM tools can rank it, cmdb_ci=the component (or else label) naming
the CI, opened_at=created. Open means `statusCategory != Done`. Jira has no change calendar that
can be read without site-specific custom fields, so `changes()` is always empty.

For the knowledge base, `resolved_issues(since)` reads issues in the Done status category updated
since a time (`statusCategory = Done AND updated >= "yyyy-MM-dd HH:mm" ORDER BY updated ASC`), with
description, resolution, resolutiondate and comments. Cloud (API v3) returns description and comment
bodies in Atlassian Document Format, which is flattened to text; Server (API v2) returns plain text.
JQL dates are read in the API user's time zone, so `since` is moved back a day: re-reading a few
issues is harmless, the knowledge base skips unchanged ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlparse

import httpx

from tools.estate import JiraConfig
from tools.itsm.history import ResolvedTicket, TicketNote
from tools.itsm.live import MAX_RECORDS, ApiError, ItsmClient, api_check
from tools.sources import SourceCheck
from tools.world import ItsmChange, ItsmIncident, parse_ts

log = logging.getLogger(__name__)

FIELDS = ["summary", "status", "priority", "components", "labels", "created"]
PRIORITY_RANK = {
    "highest": 1, "high": 2, "medium": 3, "low": 4, "lowest": 5,
    "blocker": 1, "critical": 2, "major": 3, "minor": 4, "trivial": 5,
}  # fmt: skip
CLOUD_HOSTS = (".atlassian.net", ".jira.com")
RESOLVED_FIELDS = [
    "summary", "description", "status", "priority", "components", "labels", "created", "updated",
    "resolution", "resolutiondate", "comment",
]  # fmt: skip
JQL_TIME_SLACK = timedelta(days=1)  # JQL dates are in the user's zone: read a day more
UNSCOPED_LOOKBACK = "-30d"  # without configured projects, only issues created in the last 30 days


def jql_string(value: str) -> str:
    """A JQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_jql(projects: list[str], *, open_only: bool, ci: str | None) -> str:
    clauses = []
    if projects:
        clauses.append(f"project in ({', '.join(jql_string(p) for p in projects)})")
    else:
        clauses.append(f"created >= {UNSCOPED_LOOKBACK}")
    if open_only:
        clauses.append("statusCategory != Done")
    if ci:
        clauses.append(f"(component = {jql_string(ci)} OR labels = {jql_string(ci)})")
    return " AND ".join(clauses) + " ORDER BY created DESC"


def _ranked_priority(name: str | None) -> str | None:
    if not name:
        return None
    rank = PRIORITY_RANK.get(name.strip().lower())
    return f"{rank} - {name}" if rank and not any(ch.isdigit() for ch in name) else name


def _name(value: Any) -> str | None:
    return str(value["name"]) if isinstance(value, dict) and value.get("name") else None


class JiraItsm(ItsmClient):
    """Issues of the configured Jira projects (incidents only)."""

    name = "jira"

    def __init__(
        self,
        cfg: JiraConfig,
        *,
        api: Literal["auto", "cloud", "server"] = "auto",
        page_size: int = 100,
        retries: int = 3,
        max_records: int = MAX_RECORDS,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if cfg.api_token is None:
            raise ValueError("Jira needs api_token (with email for basic auth on Cloud)")
        token = cfg.api_token.get_secret_value()
        if cfg.email:
            auth, headers = (cfg.email, token), {}
            hint = f"check jira.email ({cfg.email!r}) and jira.api_token (an API token, not a password)"
        else:
            auth, headers = None, {"Authorization": f"Bearer {token}"}
            hint = "check jira.api_token (a Jira Server/Data Center personal access token)"
        host = urlparse(cfg.url).hostname or ""
        self.flavor = api if api != "auto" else ("cloud" if host.endswith(CLOUD_HOSTS) else "server")
        self.version = "3" if self.flavor == "cloud" else "2"
        self.cfg = cfg
        self.page_size = page_size
        self.max_records = max_records
        self._connect(
            "Jira",
            cfg.url,
            cfg.timeout_s,
            headers=headers,
            auth=auth,
            auth_hint=hint,
            retries=retries,
            transport=transport,
            sleep=sleep,
        )

    def search(self, jql: str, fields: list[str] = FIELDS) -> list[dict[str, Any]]:
        """Every issue matching `jql`, following the flavor's pagination, at most max_records."""
        issues: list[dict[str, Any]] = []
        token: str | None = None
        while len(issues) < self.max_records:
            size = min(self.page_size, self.max_records - len(issues))
            if self.flavor == "cloud":
                body: dict[str, Any] = {"jql": jql, "fields": fields, "maxResults": size}
                if token:
                    body["nextPageToken"] = token
                page = self.api.post("/rest/api/3/search/jql", body)
            else:
                params = {"jql": jql, "fields": ",".join(fields), "startAt": len(issues), "maxResults": size}
                page = self.api.get("/rest/api/2/search", params=params)
            batch = page.get("issues") if isinstance(page, dict) else None
            if not isinstance(batch, list):
                raise ApiError("Jira search: unexpected answer without an 'issues' list")
            issues.extend(batch)
            if self.flavor == "cloud":
                token = page.get("nextPageToken")
                if page.get("isLast", not token) or not token:
                    return issues
            elif not batch or len(issues) >= int(page.get("total", 0)):
                return issues
        log.warning("jira: more than %d issues for %r, the oldest were left out", self.max_records, jql)
        return issues[: self.max_records]

    def incidents(self, *, ci: str | None = None, open_only: bool = True) -> list[ItsmIncident]:
        issues = self.search(build_jql(self.cfg.projects, open_only=open_only, ci=ci))
        return [self._incident(i, ci) for i in issues]

    def _incident(self, issue: dict[str, Any], ci: str | None) -> ItsmIncident:
        f = issue.get("fields") or {}
        components = [n for n in (_name(c) for c in f.get("components") or []) if n]
        labels = [str(label) for label in f.get("labels") or []]
        named = next((n for n in components + labels if ci and n.lower() == ci.lower()), None)
        created = f.get("created")
        return ItsmIncident(
            number=str(issue.get("key") or issue.get("id") or "?"),
            short_description=str(f.get("summary") or ""),
            state=_name(f.get("status")),
            priority=_ranked_priority(_name(f.get("priority"))),
            cmdb_ci=named or next(iter(components + labels), None),
            opened_at=parse_ts(created) if created else None,
        )

    def changes(self, *, start: datetime, end: datetime, ci: str | None = None) -> list[ItsmChange]:
        return []

    def resolved_issues(self, since: datetime | None = None) -> list[ResolvedTicket]:
        """Issues in the Done category updated since `since` (a day of slack; all without), oldest
        update first, with description, resolution and comments."""
        clauses = []
        if self.cfg.projects:
            clauses.append(f"project in ({', '.join(jql_string(p) for p in self.cfg.projects)})")
        clauses.append("statusCategory = Done")
        if since is not None:
            start = (since - JQL_TIME_SLACK).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
            clauses.append(f"updated >= {jql_string(start)}")
        elif not self.cfg.projects:
            clauses.append("updated >= -365d")
        issues = self.search(" AND ".join(clauses) + " ORDER BY updated ASC", RESOLVED_FIELDS)
        return [self._resolved(i) for i in issues]

    def _resolved(self, issue: dict[str, Any]) -> ResolvedTicket:
        f = issue.get("fields") or {}
        key = str(issue.get("key") or issue.get("id") or "?")
        comments = (f.get("comment") or {}).get("comments") or []
        notes = [
            TicketNote(
                text=text,
                at=_when(c.get("created")),
                by=(c.get("author") or {}).get("displayName"),
            )
            for c in comments
            if (text := rich_text(c.get("body")).strip())
        ]
        resolution = _name(f.get("resolution"))
        fix = notes[-1].text if notes else ""
        return ResolvedTicket(
            system="jira",
            number=key,
            title=str(f.get("summary") or ""),
            description=rich_text(f.get("description")).strip(),
            resolution=f"{resolution}: {fix}" if resolution and fix else (fix or resolution or ""),
            close_code=resolution,
            cis=[n for n in (_name(c) for c in f.get("components") or []) if n],
            labels=[str(label) for label in f.get("labels") or []],
            priority=_name(f.get("priority")),
            opened_at=_when(f.get("created")),
            resolved_at=_when(f.get("resolutiondate")),
            updated_at=_when(f.get("updated")),
            notes=notes,
            url=f"{self.cfg.url.rstrip('/')}/browse/{key}",
        )

    def configuration_items(self) -> set[str]:
        """Component names of the configured projects (cached 5 minutes)."""

        def read() -> set[str]:
            names: set[str] = set()
            for key in self.cfg.projects:
                found = self.api.get(f"/rest/api/{self.version}/project/{key}/components")
                names |= {n for n in (_name(c) for c in found or []) if n}
            return names

        return self._cis.get(read)

    def doctor(self) -> list[SourceCheck]:
        def probe() -> tuple[str, str | None]:
            me = self.api.get(f"/rest/api/{self.version}/myself")
            who = me.get("displayName") or me.get("emailAddress") or "?"
            missing = []
            for key in self.cfg.projects:
                try:
                    self.api.get(f"/rest/api/{self.version}/project/{key}")
                except ApiError as exc:
                    if exc.status not in (403, 404):
                        raise
                    missing.append(key)
            detail = f"signed in as {who} ({self.flavor} API v{self.version})"
            if missing:
                return (
                    f"{detail}; projects not visible: {', '.join(missing)}",
                    f"check jira.projects keys {missing} and grant this user Browse Projects on them",
                )
            return f"{detail}; projects readable: {', '.join(self.cfg.projects) or 'none configured'}", None

        return [
            api_check(
                self.api,
                "jira",
                probe,
                fix_401=self.api.auth_hint,
                fix_403="grant the Jira user Browse Projects on the configured projects",
            )
        ]


def _when(value: Any) -> datetime | None:
    return parse_ts(value) if value else None


def rich_text(value: Any) -> str:
    """Plain text of a Jira field: a string (API v2) or an Atlassian Document Format node (API v3)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(rich_text(v) for v in value)
    if not isinstance(value, dict):
        return str(value)
    kind = value.get("type")
    if kind == "text":
        return str(value.get("text") or "")
    if kind == "hardBreak":
        return "\n"
    inner = rich_text(value.get("content") or [])
    if kind in ("paragraph", "heading", "listItem", "codeBlock", "blockquote", "rule"):
        return inner.rstrip("\n") + "\n"
    return inner
