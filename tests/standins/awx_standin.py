"""A stand-in Ansible AWX / Tower API v2 (no AWX can run here).

It checks requests the way AWX does: ``Authorization: Bearer <token>`` (else 401 with AWX's
``{"detail": ...}``), paths with the trailing slash Django requires (without it: 301 to the slashed
path, as AWX's APPEND_SLASH does), JSON bodies with a JSON Content-Type, known launch fields, and
``extra_vars`` as an object or a JSON/YAML string. The launch endpoint answers GET with what the
template prompts for (ask_limit_on_launch, ask_variables_on_launch, survey_enabled,
passwords_needed_to_start) and POST with 201 ``{"job": id, "id": id, "ignored_fields": {...}}``,
putting fields the template does not prompt for into ignored_fields as AWX does. Jobs move
pending -> running -> the template's scripted outcome as they are polled; ``/api/v2/jobs/`` lists
them (filter job_template, order_by=-created, page_size) with their extra_vars as a JSON string;
``/jobs/{id}/cancel/`` cancels a running job (405 once it finished).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tests.standins.itsm_base import ApiStandIn, Rejected, Reply, Request

LAUNCH_FIELDS = {
    "extra_vars", "limit", "job_type", "inventory", "credentials", "job_tags", "skip_tags", "verbosity",
    "diff_mode", "scm_branch", "forks", "timeout", "job_slice_count", "execution_environment", "labels",
}  # fmt: skip
FINISHED = {"successful", "failed", "error", "canceled"}


@dataclass
class Template:
    id: int
    name: str
    ask_limit_on_launch: bool = True
    ask_variables_on_launch: bool = True
    survey_enabled: bool = False
    passwords_needed_to_start: list[str] = field(default_factory=list)
    outcome: str = "successful"  # what its jobs end as
    polls_to_finish: int = 2  # GETs of a job before it finishes


@dataclass
class Job:
    id: int
    template: Template
    extra_vars: dict[str, Any]
    limit: str
    status: str = "pending"
    polls: int = 0

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": "job", "url": f"/api/v2/jobs/{self.id}/", "status": self.status,
            "failed": self.status in ("failed", "error"), "job_template": self.template.id,
            "name": self.template.name, "limit": self.limit, "extra_vars": json.dumps(self.extra_vars),
            "finished": None if self.status not in FINISHED else "2026-07-08T10:00:00Z",
        }  # fmt: skip


def _detail(status: int, detail: str) -> Rejected:
    return Rejected(Reply(status, {"detail": detail}))


class AwxStandIn(ApiStandIn):
    name = "awx"

    def __init__(self, *, token: str = "awx-token") -> None:
        super().__init__()
        self.token = token
        self.templates: dict[int, Template] = {}
        self.jobs: dict[int, Job] = {}
        self._next_job = 100

    def add_template(self, template: Template) -> Template:
        self.templates[template.id] = template
        return template

    def launches(self) -> list[Request]:
        return [r for r in self.seen if r.method == "POST" and r.path.endswith("/launch/")]

    def handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise _detail(401, "Authentication credentials were not provided.")
        if not request.path.endswith("/"):
            return Reply(301, None, {"Location": request.path + "/"})
        if request.method == "POST" and request.body is not None:
            if not request.headers.get("content-type", "").startswith("application/json"):
                raise _detail(
                    415, f'Unsupported media type "{request.headers.get("content-type")}" in request.'
                )
            if "_malformed" in request.body:
                raise _detail(400, "JSON parse error - Expecting value")
        if m := re.fullmatch(r"/api/v2/job_templates/(\d+)/launch/", request.path):
            template = self.templates.get(int(m.group(1)))
            if template is None:
                raise _detail(404, "Not found.")
            return self._launch_info(template) if request.method == "GET" else self._launch(template, request)
        if m := re.fullmatch(r"/api/v2/jobs/(\d+)/", request.path):
            return self._poll(self._job(int(m.group(1))), request)
        if m := re.fullmatch(r"/api/v2/jobs/(\d+)/cancel/", request.path):
            job = self._job(int(m.group(1)))
            if request.method != "POST":
                raise _detail(405, f'Method "{request.method}" not allowed.')
            if job.status in FINISHED:
                raise _detail(405, "Job cannot be canceled.")
            job.status = "canceled"
            return Reply(202)
        if request.path == "/api/v2/jobs/" and request.method == "GET":
            return self._list(request)
        raise _detail(404, "Not found.")

    def _job(self, number: int) -> Job:
        if number not in self.jobs:
            raise _detail(404, "Not found.")
        return self.jobs[number]

    def _launch_info(self, t: Template) -> Reply:
        return Reply(
            200,
            {
                "can_start_without_user_input": not t.passwords_needed_to_start,
                "passwords_needed_to_start": t.passwords_needed_to_start,
                "ask_limit_on_launch": t.ask_limit_on_launch,
                "ask_variables_on_launch": t.ask_variables_on_launch,
                "survey_enabled": t.survey_enabled,
                "variables_needed_to_start": [],
                "job_template_data": {"id": t.id, "name": t.name, "description": ""},
            },
        )

    def _launch(self, t: Template, request: Request) -> Reply:
        body = request.body or {}
        if not isinstance(body, dict):
            raise _detail(400, "Invalid data. Expected a dictionary.")
        unknown = sorted(set(body) - LAUNCH_FIELDS)
        if unknown:
            raise Rejected(Reply(400, {k: [f"Field {k} is not a valid launch-time field."] for k in unknown}))
        if t.passwords_needed_to_start:
            raise Rejected(Reply(400, {"passwords_needed_to_start": t.passwords_needed_to_start}))
        extra = body.get("extra_vars") or {}
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except ValueError:
                raise Rejected(Reply(400, {"extra_vars": ["Must be valid JSON or YAML."]})) from None
        if not isinstance(extra, dict):
            raise Rejected(Reply(400, {"extra_vars": ["Must be a dictionary."]}))
        limit = body.get("limit", "")
        if not isinstance(limit, str):
            raise Rejected(Reply(400, {"limit": ["Not a valid string."]}))
        ignored: dict[str, Any] = {}
        if "limit" in body and not t.ask_limit_on_launch:
            ignored["limit"], limit = limit, ""
        if extra and not (t.ask_variables_on_launch or t.survey_enabled):
            ignored["extra_vars"], extra = extra, {}
        self._next_job += 1
        job = Job(id=self._next_job, template=t, extra_vars=extra, limit=limit)
        self.jobs[job.id] = job
        return Reply(201, {"job": job.id, "ignored_fields": ignored, **job.json()})

    def _poll(self, job: Job, request: Request) -> Reply:
        if request.method != "GET":
            raise _detail(405, f'Method "{request.method}" not allowed.')
        if job.status not in FINISHED:
            job.polls += 1
            job.status = "running" if job.polls < job.template.polls_to_finish else job.template.outcome
        return Reply(200, job.json())

    def _list(self, request: Request) -> Reply:
        known = {"job_template", "order_by", "page_size", "page", "status"}
        unknown = sorted(set(request.query) - known)
        if unknown:
            raise _detail(400, f"invalid filter fields {unknown}")
        jobs = list(self.jobs.values())
        if request.one("job_template"):
            jobs = [j for j in jobs if str(j.template.id) == request.one("job_template")]
        if request.one("order_by") == "-created":
            jobs.sort(key=lambda j: -j.id)
        size = int(request.one("page_size") or 25)
        return Reply(
            200,
            {"count": len(jobs), "next": None, "previous": None, "results": [j.json() for j in jobs[:size]]},
        )
