"""A stand-in Terraform Cloud / HCP Terraform API v2 (no Terraform Cloud can run here).

It checks requests the way the API does: ``Authorization: Bearer <token>`` (else 401 with a JSON:API
error), ``Content-Type: application/vnd.api+json`` on writes (else 415), JSON:API documents
(``data.type`` must be ``runs``; attributes from the documented set; run ``variables`` as a list of
``{key, value}`` strings; the workspace relationship ``{type: workspaces, id}``), 404 for an
unknown organization, workspace or run, and 422 with ``errors[]`` for invalid attributes. It serves
``GET /organizations/{org}/workspaces/{name}``, ``GET /workspaces/{id}/vars``,
``GET /workspaces/{id}/runs``, ``POST /runs``, ``GET /runs/{id}`` and
``POST /runs/{id}/actions/cancel``. A run moves pending -> planning -> planned -> applying ->
applied as it is polled (it stops at planned without auto-apply; ends errored when scripted to).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.standins.itsm_base import ApiStandIn, Rejected, Reply, Request

JSONAPI = "application/vnd.api+json"
RUN_ATTRIBUTES = {
    "message", "auto-apply", "is-destroy", "refresh", "refresh-only", "replace-addrs", "target-addrs",
    "variables", "plan-only", "save-plan", "allow-empty-apply", "allow-config-generation",
    "terraform-version", "debugging-mode",
}  # fmt: skip
STEPS = ["pending", "planning", "planned", "applying", "applied"]


def _error(status: int, title: str, detail: str = "") -> Rejected:
    return Rejected(Reply(status, {"errors": [{"status": str(status), "title": title, "detail": detail}]}))


@dataclass
class Workspace:
    id: str
    name: str
    variables: dict[str, str] = field(default_factory=dict)
    fail_runs: bool = False


@dataclass
class Run:
    id: str
    workspace: Workspace
    attributes: dict[str, Any]
    status: str = "pending"

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "runs",
            "attributes": {**self.attributes, "status": self.status},
            "relationships": {"workspace": {"data": {"type": "workspaces", "id": self.workspace.id}}},
        }


class TerraformStandIn(ApiStandIn):
    name = "terraform"

    def __init__(self, *, token: str = "tfc-token", organization: str = "acme") -> None:
        super().__init__()
        self.token, self.organization = token, organization
        self.workspaces: dict[str, Workspace] = {}
        self.runs: dict[str, Run] = {}

    def add_workspace(self, ws: Workspace) -> Workspace:
        self.workspaces[ws.name] = ws
        return ws

    def created_runs(self) -> list[Run]:
        return list(self.runs.values())

    def handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise _error(401, "unauthorized")
        if request.method == "POST" and request.headers.get("content-type", "").split(";")[0] != JSONAPI:
            raise _error(415, "unsupported media type", f"Content-Type must be {JSONAPI}")
        path = request.path
        if m := re.fullmatch(r"/api/v2/organizations/([\w-]+)/workspaces/([\w.-]+)", path):
            if m.group(1) != self.organization or m.group(2) not in self.workspaces:
                raise _error(404, "not found")
            ws = self.workspaces[m.group(2)]
            return Reply(200, {"data": {"id": ws.id, "type": "workspaces", "attributes": {"name": ws.name}}})
        if m := re.fullmatch(r"/api/v2/workspaces/(ws-\w+)/(vars|runs)", path):
            ws = self._by_id(m.group(1))
            if m.group(2) == "vars":
                data = [
                    {
                        "id": f"var-{k}",
                        "type": "vars",
                        "attributes": {"key": k, "value": v, "category": "terraform"},
                    }
                    for k, v in ws.variables.items()
                ]
                return Reply(200, {"data": data})
            runs = [r.json() for r in reversed(self.runs.values()) if r.workspace is ws]
            return Reply(200, {"data": runs})
        if path == "/api/v2/runs" and request.method == "POST":
            return self._create(request)
        if m := re.fullmatch(r"/api/v2/runs/(run-\w+)", path):
            return self._poll(self._run(m.group(1)))
        if m := re.fullmatch(r"/api/v2/runs/(run-\w+)/actions/cancel", path):
            run = self._run(m.group(1))
            if run.status in ("applied", "errored", "canceled", "discarded"):
                raise _error(409, "transition not allowed", f"run is {run.status}")
            run.status = "canceled"
            return Reply(202)
        raise _error(404, "not found")

    def _by_id(self, ws_id: str) -> Workspace:
        for ws in self.workspaces.values():
            if ws.id == ws_id:
                return ws
        raise _error(404, "not found")

    def _run(self, run_id: str) -> Run:
        if run_id not in self.runs:
            raise _error(404, "not found")
        return self.runs[run_id]

    def _create(self, request: Request) -> Reply:
        doc = request.body
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, dict) or data.get("type") != "runs":
            raise _error(422, "invalid attribute", "data.type must be runs")
        attributes = data.get("attributes") or {}
        unknown = sorted(set(attributes) - RUN_ATTRIBUTES)
        if unknown:
            raise _error(422, "invalid attribute", f"unknown attributes {unknown}")
        for var in attributes.get("variables") or []:
            if (
                not isinstance(var, dict)
                or set(var) != {"key", "value"}
                or not all(isinstance(v, str) for v in var.values())
            ):
                raise _error(
                    422, "invalid attribute", f"variables: each must be {{key, value}} strings, got {var!r}"
                )
        rel = ((data.get("relationships") or {}).get("workspace") or {}).get("data") or {}
        if rel.get("type") != "workspaces" or not rel.get("id"):
            raise _error(
                422, "invalid attribute", "relationships.workspace.data must be {type: workspaces, id}"
            )
        ws = self._by_id(str(rel["id"]))
        run = Run(id=f"run-{len(self.runs) + 1:06d}", workspace=ws, attributes=dict(attributes))
        self.runs[run.id] = run
        return Reply(201, {"data": run.json()})

    def _poll(self, run: Run) -> Reply:
        if run.status in STEPS[:-1]:
            nxt = STEPS[STEPS.index(run.status) + 1]
            if nxt == "applying" and not run.attributes.get("auto-apply"):
                nxt = "planned"
            if nxt == "planned" and run.workspace.fail_runs:
                nxt = "errored"
            run.status = nxt
            if run.status == "applied":
                for var in run.attributes.get("variables") or []:
                    run.workspace.variables[var["key"]] = var["value"]
        return Reply(200, {"data": run.json()})
