"""Settings of the systems that remediations act through (AWX, Terraform Cloud, PagerDuty Events,
the ITSM system tickets go to). The audit log and the execution ledger live in the service's store
(`service.store_url`).

Like tools/estate.py: typed models only. Secrets are `SecretStr`; the settings layer resolves
``{env: NAME}`` / ``{file: PATH}`` references into them (nothing here reads the environment).
The privileged SQL logins are per instance, in `estate.sql[].actions_login`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$")


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _http(url: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url):
        raise ValueError("must start with http:// or https:// and name a host")
    return url.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http)]


class AwxConfig(_Cfg):
    """Ansible AWX / Tower (Automation Controller): job templates run_playbook and restart_service launch."""

    url: HttpUrl = Field(description="e.g. https://awx.corp.example")
    token: SecretStr | None = Field(default=None, description="an OAuth2 / personal access token (Bearer)")
    playbooks: dict[str, int] = Field(
        default_factory=dict,
        description="playbook name a proposal may name -> job template id; nothing else can be launched",
    )
    restart_service_template: int | None = Field(
        default=None, description="job template that restarts extra var `service` on the `limit` host"
    )
    timeout_s: float = Field(default=900.0, gt=0, le=86400, description="how long to wait for the job")
    poll_interval_s: float = Field(default=5.0, gt=0, le=300)
    request_timeout_s: float = Field(default=15.0, gt=0, le=120)
    verify_tls: bool = True

    @field_validator("playbooks")
    @classmethod
    def _names(cls, v: dict[str, int]) -> dict[str, int]:
        for name, template in v.items():
            if not NAME.match(name) or template < 1:
                raise ValueError(f"playbook {name!r}: names are [A-Za-z0-9_.@:-], template ids positive")
        return v


class TerraformWorkspace(_Cfg):
    """One scalable thing: the workspace and the variable that holds its instance count."""

    workspace: str = Field(description="workspace name in the organization")
    variable: str = Field(default="instance_count", description="the Terraform variable holding the count")
    max_count: int = Field(default=10, ge=1, le=1000, description="never scale beyond this")


class TerraformConfig(_Cfg):
    """Terraform Cloud / HCP Terraform / Terraform Enterprise: scale_out queues a run on a workspace."""

    url: HttpUrl = "https://app.terraform.io"
    token: SecretStr | None = Field(default=None, description="a team or user API token (Bearer)")
    organization: str
    workspaces: dict[str, TerraformWorkspace] = Field(
        default_factory=dict, description="entity (as named in findings) -> its workspace"
    )
    auto_apply: bool = Field(
        default=True, description="apply after a successful plan (the approval was given)"
    )
    timeout_s: float = Field(default=1800.0, gt=0, le=86400)
    poll_interval_s: float = Field(default=10.0, gt=0, le=300)
    request_timeout_s: float = Field(default=15.0, gt=0, le=120)


class PagerDutyEventsConfig(_Cfg):
    """PagerDuty Events API v2: page_oncall triggers an alert on the service of the routing key."""

    url: HttpUrl = "https://events.pagerduty.com"
    routing_key: SecretStr | None = Field(default=None, description="the service integration key (32 chars)")
    request_timeout_s: float = Field(default=10.0, gt=0, le=120)


class TicketsConfig(_Cfg):
    """Where create_ticket files the incident: ServiceNow or Jira, with the credentials of
    `estate.servicenow` / `estate.jira` (that user needs create rights, and work-note/comment rights
    for the outcome written back)."""

    system: Literal["servicenow", "jira"] = "servicenow"
    jira_project: str | None = Field(default=None, description="project key for Jira issues, e.g. OPS")
    jira_issue_type: str = "Task"
    servicenow_assignment_group: str | None = None
    request_timeout_s: float = Field(default=15.0, gt=0, le=120)


class ActionsConfig(_Cfg):
    """How approved remediations run. Without a policy file every action is allowed after one
    approval and runs as a dry run (see config/policy.yaml)."""

    policy_file: Path | None = Field(
        default=None, description="the remediation policy (YAML); null = config/policy.yaml if present"
    )
    awx: AwxConfig | None = None
    terraform: TerraformConfig | None = None
    pagerduty_events: PagerDutyEventsConfig | None = None
    tickets: TicketsConfig = Field(default_factory=TicketsConfig)
