"""A stand-in Jira (no real Jira can run here), serving both search APIs.

It checks requests like Jira does: Basic email:api_token (else 401 with X-Seraph-LoginReason),
JSON bodies with a JSON Content-Type on POST, a JQL query that parses (fields project,
statusCategory, status, component, labels, created; operators = != in, not in, >= <=; AND/OR,
parentheses, ORDER BY), known body keys, and for the Cloud endpoint a bounded query ("Unbounded
JQL queries are not allowed here"). Cloud: POST /rest/api/3/search/jql with nextPageToken;
Server/Data Center: GET /rest/api/2/search with startAt/maxResults/total. Also /myself and
/project/{key}[/components] in API v2 and v3. The JQL is evaluated on the stored issues.

Resolved issues carry description, resolution ({name}), resolutiondate, updated and comments
(`comment: {comments: [{body, author, created}], total}`); API v3 returns description and comment
bodies in Atlassian Document Format, API v2 as plain text, as Jira does. `updated` takes >= and <=
with a relative (-30d) or absolute ("yyyy-MM-dd HH:mm") date, and can be ordered by.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.standins.itsm_base import ApiStandIn, Rejected, Reply, Request

JQL_FIELDS = {"project", "statuscategory", "status", "component", "labels", "created", "updated"}
ORDERABLE = {"created", "updated"}
TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>!=|>=|<=|=|\(|\)|,)|(?P<word>[-\w.]+))')
CLOUD_BODY_KEYS = {"jql", "maxResults", "nextPageToken", "fields", "expand", "properties", "fieldsByKeys"}


@dataclass
class Issue:
    key: str
    summary: str
    status: str = "Open"
    category: str = "To Do"  # statusCategory name: To Do | In Progress | Done
    priority: str = "Medium"
    components: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    created: str = "2026-07-08T09:00:00.000+0000"
    description: str = ""
    resolution: str | None = None  # e.g. Fixed, Done, Won't Do
    resolutiondate: str | None = None
    updated: str = ""
    comments: list[tuple[str, str, str]] = field(default_factory=list)  # (author, created, body)

    @property
    def project(self) -> str:
        return self.key.split("-")[0]

    def json(self, fields: list[str], *, adf: bool = False) -> dict[str, Any]:
        text = _adf if adf else (lambda t: t)
        every = {
            "summary": self.summary,
            "status": {"name": self.status, "statusCategory": {"name": self.category}},
            "priority": {"name": self.priority},
            "components": [{"name": c} for c in self.components],
            "labels": list(self.labels),
            "created": self.created,
            "updated": self.updated or self.created,
            "description": text(self.description) if self.description else None,
            "resolution": {"name": self.resolution} if self.resolution else None,
            "resolutiondate": self.resolutiondate,
            "comment": {
                "comments": [
                    {"author": {"displayName": a}, "created": c, "body": text(b)} for a, c, b in self.comments
                ],
                "total": len(self.comments),
                "maxResults": len(self.comments),
                "startAt": 0,
            },
        }
        chosen = every if not fields or "*all" in fields else {k: v for k, v in every.items() if k in fields}
        return {"id": str(abs(hash(self.key)) % 100000), "key": self.key, "fields": chosen}


def _adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document: one paragraph per line."""
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": line}]}
            for line in text.split("\n")
            if line
        ],
    }


def _reject(status: int, *messages: str) -> Rejected:
    return Rejected(Reply(status, {"errorMessages": list(messages), "errors": {}}))


class JiraStandIn(ApiStandIn):
    name = "jira"

    def __init__(self, *, email: str = "ops@example.com", api_token: str = "jira-token") -> None:
        super().__init__()
        self.email, self.api_token = email, api_token
        self.issues: list[Issue] = []
        self.components: dict[str, list[str]] = {}
        self._tokens: dict[str, tuple[str, int]] = {}  # nextPageToken -> (jql, offset)

    def handle(self, request: Request) -> Reply:
        if request.basic() != (self.email, self.api_token):
            raise Rejected(
                Reply(
                    401,
                    {
                        "errorMessages": [
                            "You are not authenticated. Authentication required to perform this operation."
                        ]
                    },
                    {"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"},
                )
            )
        path = request.path
        if request.method == "POST" and path == "/rest/api/3/search/jql":
            return self._cloud_search(request)
        if request.method == "GET" and path == "/rest/api/2/search":
            return self._server_search(request)
        if request.method == "GET" and re.fullmatch(r"/rest/api/[23]/myself", path):
            return Reply(200, {"displayName": "Ops Copilot", "emailAddress": self.email, "active": True})
        m = re.fullmatch(r"/rest/api/[23]/project/([A-Z][A-Z0-9]*)(/components)?", path)
        if request.method == "GET" and m:
            key = m.group(1)
            if key not in self.components:
                raise _reject(404, f"No project could be found with key '{key}'.")
            if m.group(2):
                return Reply(200, [{"id": str(i), "name": n} for i, n in enumerate(self.components[key])])
            return Reply(200, {"key": key, "name": key.title()})
        raise _reject(404, f"No resource at {request.method} {path}")

    def _cloud_search(self, request: Request) -> Reply:
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise Rejected(Reply(415, {"errorMessages": ["Unsupported Media Type"]}))
        body = request.body
        if not isinstance(body, dict) or "_malformed" in body:
            raise _reject(400, "Invalid request payload. Refer to the REST API documentation and try again.")
        unknown = sorted(set(body) - CLOUD_BODY_KEYS)
        if unknown:
            raise _reject(400, f"Unrecognized field(s) {unknown}")
        jql = str(body.get("jql") or "")
        size = int(body.get("maxResults") or 50)
        if not 1 <= size <= 5000:
            raise _reject(400, "maxResults must be between 1 and 5000")
        fields = [str(f) for f in body.get("fields") or []]
        offset = 0
        if body.get("nextPageToken"):
            known = self._tokens.pop(str(body["nextPageToken"]), None)
            if known is None or known[0] != jql:
                raise _reject(400, "Invalid nextPageToken")
            offset = known[1]
        matches = self.search(jql, bounded=True)
        page = matches[offset : offset + min(size, 100)]
        reply: dict[str, Any] = {
            "issues": [i.json(fields, adf=True) for i in page],
            "isLast": offset + len(page) >= len(matches),
        }
        if not reply["isLast"]:
            token = secrets.token_urlsafe(12)
            self._tokens[token] = (jql, offset + len(page))
            reply["nextPageToken"] = token
        return Reply(200, reply)

    def _server_search(self, request: Request) -> Reply:
        jql = request.one("jql") or ""
        try:
            start, size = int(request.one("startAt") or 0), int(request.one("maxResults") or 50)
        except ValueError:
            raise _reject(400, "startAt and maxResults must be integers") from None
        fields = [f for f in (request.one("fields") or "").split(",") if f]
        matches = self.search(jql, bounded=False)
        page = matches[start : start + min(size, 100)]
        return Reply(
            200,
            {
                "startAt": start,
                "maxResults": min(size, 100),
                "total": len(matches),
                "issues": [i.json(fields) for i in page],
            },
        )

    # --- JQL ---------------------------------------------------------------------------------------

    def search(self, jql: str, *, bounded: bool) -> list[Issue]:
        tokens = _tokens(jql)
        where, order = _split_order(tokens, jql)
        parser = _Parser(where, jql)
        predicate = parser.expression() if where else (lambda _i: True)
        parser.done()
        if bounded and not parser.restricted:
            raise _reject(
                400,
                "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
            )
        found = [i for i in self.issues if predicate(i)]
        for column, desc in reversed(order):
            found.sort(key=lambda i, c=column: str(getattr(i, c) or i.created), reverse=desc)  # type: ignore[misc]
        return found


def _tokens(jql: str) -> list[str]:
    out, pos = [], 0
    while pos < len(jql):
        if jql[pos:].strip() == "":
            break
        m = TOKEN.match(jql, pos)
        if not m or m.end() == pos:
            raise _reject(
                400,
                f"Error in the JQL Query: '{jql[pos:].strip()[0]}' is a reserved JQL character.",
            )
        out.append(m.group(m.lastgroup or "word"))
        pos = m.end()
    return out


def _split_order(tokens: list[str], jql: str) -> tuple[list[str], list[tuple[str, bool]]]:
    upper = [t.upper() for t in tokens]
    for i in range(len(tokens) - 1):
        if upper[i] == "ORDER" and upper[i + 1] == "BY":
            rest, order = tokens[i + 2 :], []
            while rest:
                column = rest.pop(0).lower()
                if column not in ORDERABLE:
                    raise _reject(
                        400, f"Error in the JQL Query: cannot order by '{column}' in this stand-in."
                    )
                desc = bool(rest) and rest[0].upper() == "DESC"
                if rest and rest[0].upper() in ("ASC", "DESC"):
                    rest.pop(0)
                if rest and rest[0] == ",":
                    rest.pop(0)
                order.append((column, desc))
            return tokens[:i], order
    return tokens, []


def _literal(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1]) if token.startswith('"') else token


def _created_at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


class _Parser:
    """Recursive descent over: expr := term (OR term)*; term := factor (AND factor)*;
    factor := '(' expr ')' | field op value."""

    def __init__(self, tokens: list[str], jql: str) -> None:
        self.tokens, self.jql, self.restricted = tokens, jql, False

    def _fail(self, why: str) -> Rejected:
        return _reject(400, f"Error in the JQL Query: {why} (query: {self.jql})")

    def peek(self) -> str | None:
        return self.tokens[0] if self.tokens else None

    def take(self) -> str:
        if not self.tokens:
            raise self._fail("Expecting more of the query")
        return self.tokens.pop(0)

    def done(self) -> None:
        if self.tokens:
            raise self._fail(f"Unexpected '{self.tokens[0]}'")

    def expression(self) -> Any:
        parts = [self.term()]
        while (self.peek() or "").upper() == "OR":
            self.take()
            parts.append(self.term())
        return lambda i: any(p(i) for p in parts)

    def term(self) -> Any:
        parts = [self.factor()]
        while (self.peek() or "").upper() == "AND":
            self.take()
            parts.append(self.factor())
        return lambda i: all(p(i) for p in parts)

    def factor(self) -> Any:
        if self.peek() == "(":
            self.take()
            inner = self.expression()
            if self.take() != ")":
                raise self._fail("Expecting ')'")
            return inner
        column = self.take().lower()
        if column not in JQL_FIELDS:
            raise self._fail(f"Field '{column}' does not exist or you do not have permission to view it")
        op = self.take().lower()
        if op == "not" and (self.peek() or "").lower() == "in":
            self.take()
            op = "not in"
        if op in ("in", "not in"):
            values = self._list()
        elif op in ("=", "!=", ">=", "<="):
            token = self.take()
            if token in "(),":
                raise self._fail(f"Expecting a value after '{op}'")
            values = [_literal(token)]
        else:
            raise self._fail(f"Expecting an operator after '{column}', got '{op}'")
        if column in ("project", "created", "updated"):
            self.restricted = True
        return self._predicate(column, op, values)

    def _list(self) -> list[str]:
        if self.take() != "(":
            raise self._fail("Expecting '(' after 'in'")
        values = [_literal(self.take())]
        while self.peek() == ",":
            self.take()
            values.append(_literal(self.take()))
        if self.take() != ")":
            raise self._fail("Expecting ')' to close the list")
        return values

    def _predicate(self, column: str, op: str, values: list[str]) -> Any:
        if column in ("created", "updated"):
            m = re.fullmatch(r"-(\d+)d", values[0])
            if op not in (">=", "<="):
                raise self._fail(f"{column} takes >= or <=")
            if m:
                bound = datetime.now(UTC) - timedelta(days=int(m.group(1)))
            else:
                try:
                    bound = datetime.strptime(values[0], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
                except ValueError:
                    raise self._fail(
                        f"Date value '{values[0]}' for field '{column}' is invalid. Valid formats include: "
                        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
                        "format e.g. '-5d'"
                    ) from None

            def stamp(i: Issue) -> datetime:
                return _created_at(i.updated or i.created if column == "updated" else i.created)

            return lambda i: (stamp(i) >= bound) == (op == ">=")

        def actual(i: Issue) -> list[str]:
            return {
                "project": [i.project], "statuscategory": [i.category], "status": [i.status],
                "component": i.components, "labels": i.labels,
            }[column]  # fmt: skip

        wanted = {v.lower() for v in values}
        if op in ("=", "in"):
            return lambda i: any(a.lower() in wanted for a in actual(i))
        if op in ("!=", "not in"):
            return lambda i: not any(a.lower() in wanted for a in actual(i))
        raise self._fail(f"Operator '{op}' is not supported for field '{column}'")
