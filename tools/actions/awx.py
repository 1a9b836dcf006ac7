"""run_playbook and restart_service: launch an Ansible AWX / Tower job template and poll the job.

- run_playbook: target kind ``playbook``, id = a playbook name configured in `actions.awx.playbooks`
  (name -> job template id): a proposal can only launch a template an operator listed.
- restart_service: target kind ``service``, id = the service (unit) name; the configured
  `restart_service_template` gets it as the extra var ``service``.
The target's entity is the host, passed as the job's ``limit``. A template that does not prompt for a
limit on launch would run on its whole inventory: it is refused (blast radius). Launch:
``POST /api/v2/job_templates/{id}/launch/`` with ``limit`` and ``extra_vars`` (which carry the
idempotency key); poll ``GET /api/v2/jobs/{id}/`` until successful / failed / error / canceled; on
timeout ``POST /api/v2/jobs/{id}/cancel/``. Dry run: the launch endpoint is only read (GET), which
checks the template exists and is launchable by this token, and the request is described.
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
    host_name,
    plain_name,
    run_guarded,
)
from tools.actions.config import AwxConfig
from tools.actions.http import ActionApi, ApiExecutor, bearer
from tools.base import escape_text

FINISHED = {"successful", "failed", "error", "canceled"}
KEY_VAR = "opscopilot_key"


class AwxJobs(ApiExecutor):
    """run_playbook and restart_service through one AWX / Tower."""

    actions = ("run_playbook", "restart_service")

    def __init__(
        self,
        cfg: AwxConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        token = bearer(cfg.token, "AWX needs token (an OAuth2 or personal access token)")
        api = ActionApi(
            "AWX",
            cfg.url,
            headers={**token, "Accept": "application/json"},
            timeout_s=cfg.request_timeout_s,
            auth_hint="check actions.awx.token and that its user may execute the job template",
            verify=cfg.verify_tls,
            transport=transport,
            sleep=sleep,
        )
        super().__init__(api, sleep=sleep, clock=clock)
        self.cfg = cfg

    def execute(self, request: ActionRequest) -> ExecutionResult:
        return run_guarded(request, lambda trail: self._run(request, trail))

    def _template(self, request: ActionRequest) -> tuple[int, str, dict[str, Any]]:
        """(job template id, host, extra vars) from the typed target; refused unless configured."""
        target = request.target
        host = host_name(target.entity)
        extra: dict[str, Any] = {KEY_VAR: request.key, "opscopilot_thread": request.thread_id}
        if request.proposal.action == "run_playbook":
            if target.kind != "playbook":
                raise Refused(f"run_playbook needs a playbook target, got a {target.kind} target")
            name = plain_name(target.id, "playbook")
            if name not in self.cfg.playbooks:
                known = ", ".join(sorted(self.cfg.playbooks)) or "none"
                raise Refused(
                    f"playbook {escape_text(name)} is not listed in actions.awx.playbooks (known: {known}): "
                    "only listed job templates can be launched"
                )
            return self.cfg.playbooks[name], host, extra
        if target.kind != "service":
            raise Refused(f"restart_service needs a service target, got a {target.kind} target")
        if self.cfg.restart_service_template is None:
            raise Refused("no job template restarts services: set actions.awx.restart_service_template")
        extra["service"] = plain_name(target.id, "service")
        return self.cfg.restart_service_template, host, extra

    def _run(self, request: ActionRequest, trail: Trail) -> Done:
        template, host, extra = self._template(request)
        check_evidence(request)
        launch = f"/api/v2/job_templates/{template}/launch/"
        info = self.api.call("GET", launch, trail) or {}
        if not info.get("ask_limit_on_launch"):
            raise Refused(
                f"job template {template} does not prompt for a limit on launch, so it would run on its "
                f"whole inventory instead of {host}: enable 'Prompt on launch' for Limit"
            )
        if not info.get("ask_variables_on_launch") and not info.get("survey_enabled"):
            raise Refused(
                f"job template {template} does not accept extra variables on launch: enable 'Prompt on "
                "launch' for Variables (the key that makes the launch idempotent travels in them)"
            )
        if info.get("passwords_needed_to_start"):
            raise Refused(f"job template {template} needs passwords to start: it cannot run unattended")
        body = {"limit": host, "extra_vars": extra}
        if request.dry_run:
            return (
                "dry_run",
                f"dry run: would launch AWX job template {template} with limit {host} and extra vars "
                f"{json.dumps(extra, sort_keys=True)}; nothing was run",
                {"data": {"template": template, "launch": body}},
            )
        launched = self.api.call("POST", launch, trail, json=body, ok=(201,)) or {}
        job = launched.get("job") or launched.get("id")
        if not job:
            raise Failed(f"AWX launched template {template} but its answer names no job: {launched}")
        ignored = launched.get("ignored_fields") or {}
        if ignored:
            self._cancel(job, trail)
            raise Failed(
                f"AWX ignored {sorted(ignored)} on launch of template {template}; job {job} cancelled"
            )
        return self._wait(int(job), template, host, trail)

    def _wait(self, job: int, template: int, host: str, trail: Trail, reconciled: bool = False) -> Done:
        deadline = self._clock() + self.cfg.timeout_s
        url = f"{self.cfg.url}/#/jobs/playbook/{job}/output"
        status = "?"
        while True:
            data = self.api.call("GET", f"/api/v2/jobs/{job}/", trail) or {}
            status = str(data.get("status") or "?")
            if status in FINISHED:
                break
            if self._clock() >= deadline:
                self._cancel(job, trail)
                raise Failed(
                    f"AWX job {job} (template {template}, limit {host}) was still {status} after "
                    f"{self.cfg.timeout_s:g} s; cancel requested"
                )
            self._sleep(self.cfg.poll_interval_s)
        extra: dict[str, Any] = {
            "external_id": str(job),
            "external_url": url,
            "data": {"template": template, "status": status},
        }
        if reconciled:
            extra["reconciled"] = True
        if status != "successful":
            raise Failed(
                f"AWX job {job} (template {template}, limit {host}) ended {status}: see {url}", **extra
            )
        return "executed", f"AWX job {job} (template {template}, limit {host}) finished successful", extra

    def _cancel(self, job: Any, trail: Trail) -> None:
        try:
            self.api.call("POST", f"/api/v2/jobs/{job}/cancel/", trail, ok=(202, 204))
        except Failed as exc:
            trail.add(f"cancel of job {job} failed: {exc}")

    def reconcile(self, request: ActionRequest) -> ExecutionResult | None:
        """Find the job an interrupted attempt launched: the newest jobs of the template whose extra
        vars carry this request's key."""
        template, host, _ = self._template(request)
        trail = Trail()
        page = (
            self.api.call(
                "GET",
                "/api/v2/jobs/",
                trail,
                params={"job_template": template, "order_by": "-created", "page_size": 50},
            )
            or {}
        )
        for job in page.get("results") or []:
            try:
                extra = json.loads(job.get("extra_vars") or "{}")
            except ValueError:
                continue
            if isinstance(extra, dict) and extra.get(KEY_VAR) == request.key:
                found = int(job["id"])
                return run_guarded(
                    request, functools.partial(self._wait, found, template, host, reconciled=True)
                )
        return None
