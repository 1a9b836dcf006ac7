"""scale_out: a Terraform Cloud / HCP Terraform / Terraform Enterprise run that raises a count.

Target: kind ``workspace``, entity = what the finding is about, id = its workspace name, and
``attrs["count"]`` = the instance count wanted. The entity must be listed in
`actions.terraform.workspaces` with that workspace; the count must be a whole number above the
workspace variable's current value and at most `max_count`. Requests (JSON:API, Bearer token):
``GET /api/v2/organizations/{org}/workspaces/{name}``, ``GET /api/v2/workspaces/{id}/vars`` (the
current count), ``POST /api/v2/runs`` with a run variable overriding the count and the idempotency
key in its message, then ``GET /api/v2/runs/{id}`` until applied (or planned_and_finished, errored,
discarded, canceled); on timeout ``POST /api/v2/runs/{id}/actions/cancel``. Dry run: the reads only.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from tools.actions.base import (
    ActionRequest,
    Done,
    ExecutionResult,
    Failed,
    Refused,
    Trail,
    check_evidence,
    plain_name,
    run_guarded,
)
from tools.actions.config import TerraformConfig
from tools.actions.http import ActionApi, ApiExecutor, bearer
from tools.base import escape_text

JSONAPI = "application/vnd.api+json"
DONE = {"applied", "planned_and_finished"}
FAILED = {"errored", "discarded", "canceled", "force_canceled", "policy_soft_failed"}


class TerraformScaleOut(ApiExecutor):
    """scale_out through one Terraform Cloud organization."""

    actions = ("scale_out",)

    def __init__(
        self,
        cfg: TerraformConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        token = bearer(cfg.token, "Terraform Cloud needs token (a team or user API token)")
        api = ActionApi(
            "Terraform Cloud",
            cfg.url,
            headers={**token, "Content-Type": JSONAPI},
            timeout_s=cfg.request_timeout_s,
            auth_hint="check actions.terraform.token and that its team may queue runs on the workspace",
            transport=transport,
            sleep=sleep,
        )
        super().__init__(api, sleep=sleep, clock=clock)
        self.cfg = cfg

    def execute(self, request: ActionRequest) -> ExecutionResult:
        return run_guarded(request, lambda trail: self._run(request, trail))

    def _plan(self, request: ActionRequest) -> tuple[str, str, int, int]:
        """(workspace, variable, wanted count, max) from the typed target; refused unless configured."""
        target = request.target
        if target.kind != "workspace":
            raise Refused(f"scale_out needs a workspace target, got a {target.kind} target")
        ws = self.cfg.workspaces.get(target.entity)
        if ws is None:
            raise Refused(f"{escape_text(target.entity)} has no workspace in actions.terraform.workspaces")
        name = plain_name(target.id, "workspace")
        if name != ws.workspace:
            raise Refused(
                f"workspace {escape_text(name)} is not the one configured for {escape_text(target.entity)} "
                f"({ws.workspace})"
            )
        raw = target.attrs.get("count", "")
        if not raw.isdigit() or not 1 <= int(raw) <= ws.max_count:
            raise Refused(f"count {escape_text(raw)} is not a whole number from 1 to {ws.max_count}: refused")
        return name, ws.variable, int(raw), ws.max_count

    def _workspace_id(self, name: str, trail: Trail) -> str:
        found = self.api.call(
            "GET", f"/api/v2/organizations/{self.cfg.organization}/workspaces/{name}", trail
        )
        ws_id = ((found or {}).get("data") or {}).get("id")
        if not ws_id:
            raise Failed(f"Terraform Cloud has no workspace {name} in {self.cfg.organization}")
        return str(ws_id)

    def _run(self, request: ActionRequest, trail: Trail) -> Done:
        name, variable, wanted, _ = self._plan(request)
        check_evidence(request)
        ws_id = self._workspace_id(name, trail)
        current = self._current(ws_id, variable, trail)
        if current is not None and wanted <= current:
            raise Refused(
                f"{variable} is already {current} on {name}; scaling out means a count above it, not {wanted}"
            )
        message = f"OpsCopilot scale_out {name} {variable}={wanted} (approved; key {request.key})"
        body = {
            "data": {
                "type": "runs",
                "attributes": {
                    "message": message,
                    "auto-apply": self.cfg.auto_apply,
                    "variables": [{"key": variable, "value": str(wanted)}],
                },
                "relationships": {"workspace": {"data": {"type": "workspaces", "id": ws_id}}},
            }
        }
        if request.dry_run:
            return (
                "dry_run",
                f"dry run: would queue a run on workspace {name} ({ws_id}) with {variable}={wanted} "
                f"(now {current if current is not None else 'unknown'}); nothing was run",
                {"data": {"workspace": ws_id, "run": body}},
            )
        created = self.api.call("POST", "/api/v2/runs", trail, json=body, ok=(201,)) or {}
        run_id = (created.get("data") or {}).get("id")
        if not run_id:
            raise Failed(
                f"Terraform Cloud created a run on {name} but named no run id: {json.dumps(created)[:200]}"
            )
        return self._wait(str(run_id), name, variable, wanted, trail)

    def _current(self, ws_id: str, variable: str, trail: Trail) -> int | None:
        found = self.api.call("GET", f"/api/v2/workspaces/{ws_id}/vars", trail) or {}
        for var in found.get("data") or []:
            attrs = var.get("attributes") or {}
            if attrs.get("key") == variable and str(attrs.get("value", "")).strip().isdigit():
                return int(str(attrs["value"]).strip())
        return None

    def _wait(
        self, run_id: str, name: str, variable: str, wanted: int, trail: Trail, reconciled: bool = False
    ) -> Done:
        deadline = self._clock() + self.cfg.timeout_s
        url = f"{self.cfg.url}/app/{self.cfg.organization}/workspaces/{name}/runs/{run_id}"
        while True:
            data = (self.api.call("GET", f"/api/v2/runs/{run_id}", trail) or {}).get("data") or {}
            status = str((data.get("attributes") or {}).get("status") or "?")
            if status in DONE or status in FAILED:
                break
            if status == "planned" and not self.cfg.auto_apply:
                break  # waits for someone to apply it in Terraform Cloud
            if self._clock() >= deadline:
                try:
                    self.api.call("POST", f"/api/v2/runs/{run_id}/actions/cancel", trail, ok=(202,))
                except Failed as exc:
                    trail.add(f"cancel of run {run_id} failed: {exc}")
                raise Failed(
                    f"run {run_id} on {name} was still {status} after {self.cfg.timeout_s:g} s; "
                    "cancel requested"
                )
            self._sleep(self.cfg.poll_interval_s)
        extra: dict[str, Any] = {"external_id": run_id, "external_url": url, "data": {"status": status}}
        if reconciled:
            extra["reconciled"] = True
        if status in FAILED:
            raise Failed(f"run {run_id} on {name} ended {status}: see {url}", **extra)
        done = "applied" if status == "applied" else f"{status} (not applied here)"
        return "executed", f"run {run_id} on workspace {name} set {variable}={wanted}: {done}", extra

    def reconcile(self, request: ActionRequest) -> ExecutionResult | None:
        """Find the run an interrupted attempt queued: a recent run whose message carries the key."""
        name, variable, wanted, _ = self._plan(request)
        trail = Trail()
        ws_id = self._workspace_id(name, trail)
        runs = (
            self.api.call("GET", f"/api/v2/workspaces/{ws_id}/runs", trail, params={"page[size]": 20}) or {}
        )
        for run in runs.get("data") or []:
            if request.key in str((run.get("attributes") or {}).get("message") or ""):
                found = str(run["id"])
                return run_guarded(
                    request, functools.partial(self._wait, found, name, variable, wanted, reconciled=True)
                )
        return None
