"""The API executors over real HTTP against local stand-ins.

No AWX, Terraform Cloud, PagerDuty, ServiceNow or Jira can run here: every test talks over HTTP on
127.0.0.1 to a stand-in (tests/standins/) that checks requests the way the real API does: auth
headers, paths (AWX's trailing slash), content types, payload schemas (JSON:API runs, PD-CEF
events, ServiceNow columns, Jira fields and ADF), status codes and error bodies. What they prove is
our side of the wire: the requests we build, the polling, the timeouts, the dry runs, the refusals,
what a failure reports, and that nothing is sent twice. They cannot prove a real server's quirks
beyond those.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from tests.standins.awx_standin import AwxStandIn, Template
from tests.standins.itsm_base import Rejected, Reply, Request
from tests.standins.pagerduty_events_standin import PagerDutyEventsStandIn
from tests.standins.terraform_standin import TerraformStandIn, Workspace
from tests.standins.ticket_standins import JiraWriteStandIn, ServiceNowWriteStandIn
from tools.actions.awx import AwxJobs
from tools.actions.base import ActionRequest
from tools.actions.config import (
    AwxConfig,
    PagerDutyEventsConfig,
    TerraformConfig,
    TerraformWorkspace,
    TicketsConfig,
)
from tools.actions.pagerduty import PagerDutyPage
from tools.actions.terraform import TerraformScaleOut
from tools.actions.tickets import JiraTickets, ServiceNowTickets, WorkNotes
from tools.base import ActionName, ActionTarget, Evidence, ProposedAction
from tools.estate import JiraConfig, ServiceNowConfig

pytestmark = pytest.mark.live


def request(
    action: ActionName, target: ActionTarget, *, dry_run: bool = False, key: str = "k" * 64
) -> ActionRequest:
    ev = Evidence(
        id=f"view@{target.entity}", specialist="metrics", tool="view", entity=target.entity, summary="x"
    )
    return ActionRequest(
        key=key,
        thread_id="inv-test",
        proposal=ProposedAction(
            action=action, target=target.display(), target_ref=target, reason="because", evidence=[ev.id]
        ),
        evidence=[ev],
        observed_at=datetime.now(UTC),
        summary="Disk on web-01 fills in 3 hours",
        findings=["Disk /var on web-01 92% rising 4%/h"],
        approvers=["alice"],
        dry_run=dry_run,
    )


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


# --- AWX ---------------------------------------------------------------------------------------------


@pytest.fixture
def awx() -> Iterator[AwxStandIn]:
    s = AwxStandIn(token="awx-token")
    s.add_template(Template(10, "clean-tmp"))
    s.add_template(Template(11, "restart-service"))
    s.add_template(Template(12, "whole-inventory", ask_limit_on_launch=False))
    s.add_template(Template(13, "broken", outcome="failed"))
    s.add_template(Template(14, "slow", polls_to_finish=1000))
    with s:
        yield s


def awx_jobs(standin: AwxStandIn, clock: FakeClock | None = None, **over: object) -> AwxJobs:
    cfg = AwxConfig(
        url=standin.url,
        token=SecretStr("awx-token"),
        poll_interval_s=1,
        timeout_s=30,
        playbooks={"clean-tmp": 10, "whole-inventory": 12, "broken": 13, "slow": 14},
        restart_service_template=11,
    ).model_copy(update=over)
    clock = clock or FakeClock()
    return AwxJobs(cfg, sleep=clock.sleep, clock=clock)


def test_awx_run_playbook_launches_the_listed_template_on_the_host_and_waits_for_success(
    awx: AwxStandIn,
) -> None:
    result = awx_jobs(awx).execute(
        request("run_playbook", ActionTarget(entity="web-01", kind="playbook", id="clean-tmp"))
    )
    assert result.outcome == "executed", result
    launch = awx.launches()
    assert len(launch) == 1 and launch[0].path == "/api/v2/job_templates/10/launch/"
    assert launch[0].body["limit"] == "web-01" and launch[0].body["extra_vars"]["opscopilot_key"] == "k" * 64
    assert result.external_id and awx.jobs[int(result.external_id)].status == "successful"
    assert any("GET" in s and "/jobs/" in s for s in result.tried)


def test_awx_restart_service_passes_the_service_as_an_extra_var(awx: AwxStandIn) -> None:
    result = awx_jobs(awx).execute(
        request("restart_service", ActionTarget(entity="web-01", kind="service", id="nginx.service"))
    )
    assert result.outcome == "executed", result
    assert awx.launches()[0].body["extra_vars"]["service"] == "nginx.service"


def test_awx_dry_run_reads_the_launch_endpoint_and_launches_nothing(awx: AwxStandIn) -> None:
    result = awx_jobs(awx).execute(
        request("run_playbook", ActionTarget(entity="web-01", kind="playbook", id="clean-tmp"), dry_run=True)
    )
    assert (
        result.outcome == "dry_run" and "would launch AWX job template 10 with limit web-01" in result.detail
    )
    assert awx.launches() == [] and [r.method for r in awx.seen] == ["GET"]


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (ActionTarget(entity="web-01", kind="playbook", id="rm-everything"), "not listed"),
        (ActionTarget(entity="web-01", kind="service", id="nginx; rm -rf /"), "not a plain name"),
        (ActionTarget(entity="web-*,db-*", kind="playbook", id="clean-tmp"), "not a plain host name"),
        (ActionTarget(entity="web-01", kind="playbook", id="whole-inventory"), "whole inventory"),
    ],
)
def test_awx_refuses_unlisted_templates_free_text_patterns_and_unbounded_templates(
    awx: AwxStandIn, target: ActionTarget, why: str
) -> None:
    action: ActionName = "restart_service" if target.kind == "service" else "run_playbook"
    result = awx_jobs(awx).execute(request(action, target))
    assert result.outcome == "refused" and why in result.detail, result
    assert awx.launches() == []


def test_awx_failed_job_reports_what_was_tried(awx: AwxStandIn) -> None:
    result = awx_jobs(awx).execute(
        request("run_playbook", ActionTarget(entity="web-01", kind="playbook", id="broken"))
    )
    assert result.outcome == "failed" and "ended failed" in result.detail
    assert result.tried[0].startswith("GET ") and any(s.startswith("POST ") for s in result.tried)


def test_awx_timeout_cancels_the_job_and_fails(awx: AwxStandIn) -> None:
    result = awx_jobs(awx, timeout_s=5).execute(
        request("run_playbook", ActionTarget(entity="web-01", kind="playbook", id="slow"))
    )
    assert result.outcome == "failed" and "cancel requested" in result.detail
    assert awx.requests_to("/api/v2/jobs/101/cancel/") and awx.jobs[101].status == "canceled"


def test_awx_reads_are_retried_after_a_server_error(awx: AwxStandIn) -> None:
    awx.fail_next("/api/v2/job_templates/10/launch/", 502, times=2)  # the GETs before the launch
    result = awx_jobs(awx).execute(
        request("run_playbook", ActionTarget(entity="web-01", kind="playbook", id="clean-tmp"))
    )
    assert result.outcome == "executed" and len(awx.launches()) == 1
    assert [s.split(" -> ")[-1] for s in result.tried[:3]] == ["HTTP 502", "HTTP 502", "HTTP 200"]


def test_awx_launch_is_not_repeated_after_a_server_error(awx: AwxStandIn) -> None:
    """A 502 to the launch POST may come after AWX launched the job: it is reported, never re-sent."""
    original = awx.handle

    def post_fails(request: Request) -> Reply:  # the parameter is named as in AwxStandIn.handle
        if request.method == "POST" and request.path.endswith("/launch/"):
            raise Rejected(Reply(502, {"detail": "Bad gateway"}))
        return original(request)

    awx.handle = post_fails  # type: ignore[method-assign]
    result = awx_jobs(awx).execute(
        request("run_playbook", ActionTarget(entity="web-01", kind="playbook", id="clean-tmp"))
    )
    assert result.outcome == "failed" and "HTTP 502" in result.detail and "Bad gateway" in result.detail
    assert len(awx.launches()) == 1


def test_awx_wrong_token_fails_with_what_to_check(awx: AwxStandIn) -> None:
    jobs = AwxJobs(AwxConfig(url=awx.url, token=SecretStr("wrong"), playbooks={"clean-tmp": 10}))
    result = jobs.execute(
        request("run_playbook", ActionTarget(entity="web-01", kind="playbook", id="clean-tmp"))
    )
    assert result.outcome == "failed" and "HTTP 401" in result.detail and "actions.awx.token" in result.detail
    assert "wrong" not in result.detail


def test_awx_reconcile_finds_the_job_an_interrupted_attempt_launched(awx: AwxStandIn) -> None:
    jobs = awx_jobs(awx)
    req = request("run_playbook", ActionTarget(entity="web-01", kind="playbook", id="clean-tmp"))
    assert jobs.reconcile(req) is None  # nothing launched yet: safe to run
    first = jobs.execute(req)
    found = jobs.reconcile(req)
    assert found is not None and found.reconciled and found.external_id == first.external_id
    assert len(awx.launches()) == 1


# --- Terraform Cloud -------------------------------------------------------------------------------


@pytest.fixture
def tfc() -> Iterator[TerraformStandIn]:
    s = TerraformStandIn(token="tfc-token", organization="acme")
    s.add_workspace(Workspace("ws-web0001", "web-prod", {"instance_count": "3"}))
    s.add_workspace(Workspace("ws-bad0001", "broken-prod", {"instance_count": "2"}, fail_runs=True))
    with s:
        yield s


def scale(standin: TerraformStandIn, **over: object) -> TerraformScaleOut:
    cfg = TerraformConfig(
        url=standin.url,
        token=SecretStr("tfc-token"),
        organization="acme",
        poll_interval_s=1,
        workspaces={
            "web-tier": TerraformWorkspace(workspace="web-prod", max_count=6),
            "broken-tier": TerraformWorkspace(workspace="broken-prod"),
        },
    ).model_copy(update=over)
    clock = FakeClock()
    return TerraformScaleOut(cfg, sleep=clock.sleep, clock=clock)


def ws_target(count: str, entity: str = "web-tier", name: str = "web-prod") -> ActionTarget:
    return ActionTarget(entity=entity, kind="workspace", id=name, attrs={"count": count})


def test_terraform_scale_out_queues_a_run_with_the_count_and_waits_until_applied(
    tfc: TerraformStandIn,
) -> None:
    result = scale(tfc).execute(request("scale_out", ws_target("4")))
    assert result.outcome == "executed" and "applied" in result.detail, result
    (run,) = tfc.created_runs()
    assert run.attributes["variables"] == [{"key": "instance_count", "value": "4"}]
    assert run.attributes["auto-apply"] is True and "k" * 64 in run.attributes["message"]
    assert tfc.workspaces["web-prod"].variables["instance_count"] == "4"


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (ws_target("3"), "already 3"),
        (ws_target("2"), "already 3"),
        (ws_target("7"), "from 1 to 6"),
        (ws_target("4; destroy"), "not a whole number"),
        (ws_target("4", name="other-prod"), "not the one configured"),
        (ws_target("4", entity="unknown-tier"), "has no workspace"),
    ],
)
def test_terraform_refuses_counts_that_do_not_scale_out_and_unconfigured_workspaces(
    tfc: TerraformStandIn, target: ActionTarget, why: str
) -> None:
    result = scale(tfc).execute(request("scale_out", target))
    assert result.outcome == "refused" and why in result.detail, result
    assert tfc.created_runs() == []


def test_terraform_dry_run_reads_and_queues_nothing(tfc: TerraformStandIn) -> None:
    result = scale(tfc).execute(request("scale_out", ws_target("5"), dry_run=True))
    assert result.outcome == "dry_run" and "instance_count=5 (now 3)" in result.detail
    assert tfc.created_runs() == [] and all(r.method == "GET" for r in tfc.seen)


def test_terraform_errored_run_fails_and_reconcile_finds_a_queued_run(tfc: TerraformStandIn) -> None:
    executor = scale(tfc)
    req = request("scale_out", ws_target("3", entity="broken-tier", name="broken-prod"))
    result = executor.execute(req)
    assert result.outcome == "failed" and "errored" in result.detail
    found = executor.reconcile(req)
    assert found is not None and found.reconciled and found.external_id == tfc.created_runs()[0].id
    assert scale(tfc).reconcile(request("scale_out", ws_target("5"), key="z" * 64)) is None


# --- PagerDuty Events v2 ------------------------------------------------------------------------------


@pytest.fixture
def pd() -> Iterator[PagerDutyEventsStandIn]:
    with PagerDutyEventsStandIn(routing_key="R0UT1NGKEY0123456789abcdef012345") as s:
        yield s  # type: ignore[misc]


def pager(standin: PagerDutyEventsStandIn, key: str = "R0UT1NGKEY0123456789abcdef012345") -> PagerDutyPage:
    return PagerDutyPage(PagerDutyEventsConfig(url=standin.url, routing_key=SecretStr(key)))


def test_pagerduty_page_triggers_one_alert_even_when_sent_twice(pd: PagerDutyEventsStandIn) -> None:
    target = ActionTarget(
        entity="pg-archive-01", kind="page", attrs={"series": "disk.used_percent{path=/var}"}
    )
    first = pager(pd).execute(request("page_oncall", target))
    again = pager(pd).execute(request("page_oncall", target))  # a retried worker
    assert first.outcome == again.outcome == "executed", first
    assert len(pd.alerts) == 1 and len(next(iter(pd.alerts.values()))) == 2  # one alert, de-duplicated
    event = pd.triggers()[0].body
    assert event["payload"]["source"] == "pg-archive-01" and event["payload"]["severity"] == "warning"
    assert event["payload"]["custom_details"]["approved_by"] == ["alice"]


def test_pagerduty_dry_run_sends_nothing_and_a_bad_key_fails_with_pagerdutys_reason(
    pd: PagerDutyEventsStandIn,
) -> None:
    target = ActionTarget(entity="pg-archive-01", kind="page")
    assert pager(pd).execute(request("page_oncall", target, dry_run=True)).outcome == "dry_run"
    assert pd.seen == []
    bad = pager(pd, "X" * 32).execute(request("page_oncall", target))
    assert (
        bad.outcome == "failed" and "HTTP 400" in bad.detail and "not a known integration key" in bad.detail
    )


# --- tickets and work notes ----------------------------------------------------------------------


@pytest.fixture
def snow() -> Iterator[ServiceNowWriteStandIn]:
    with ServiceNowWriteStandIn(cis={"pg-archive-01"}) as s:
        yield s  # type: ignore[misc]


def test_servicenow_ticket_carries_summary_and_evidence_reconciles_and_takes_a_work_note(
    snow: ServiceNowWriteStandIn,
) -> None:
    cfg = ServiceNowConfig(url=snow.url, username="opscopilot", password=SecretStr("s3cret"))
    tickets = ServiceNowTickets(cfg, TicketsConfig())
    req = request("create_ticket", ActionTarget(entity="pg-archive-01", kind="ticket"))
    assert tickets.reconcile(req) is None
    result = tickets.execute(req)
    assert result.outcome == "executed" and result.external_id == "INC0020001", result
    row = snow.records["incident"][0]
    assert row["short_description"] == "Disk on web-01 fills in 3 hours" and row["cmdb_ci"] == "pg-archive-01"
    assert "[view@pg-archive-01]" in row["description"] and "approved by alice" in row["description"]
    found = tickets.reconcile(req)
    assert found is not None and found.external_id == "INC0020001" and len(snow.records["incident"]) == 1
    done, tried = WorkNotes(servicenow=tickets).add("INC0020001", "kill_session verified")
    assert "work note added" in done and snow.journal[row["sys_id"]] == ["kill_session verified"]
    assert [t.split()[0] for t in tried] == ["GET", "PATCH"]


@pytest.mark.parametrize("version", ["2", "3"])
def test_jira_ticket_in_both_api_versions_reconciles_and_takes_a_comment(version: str) -> None:
    standin = JiraWriteStandIn(email="ops@example.com", api_token="jira-token")
    standin.components = {"OPS": []}
    with standin:
        cfg = JiraConfig(
            url=standin.url, email="ops@example.com", api_token=SecretStr("jira-token"), projects=["OPS"]
        )
        tickets = JiraTickets(cfg, TicketsConfig(system="jira"))
        tickets.version = version  # Cloud (ADF, v3) or Server / Data Center (v2)
        req = request("create_ticket", ActionTarget(entity="web-01", kind="ticket"))
        result = tickets.execute(req)
        assert result.outcome == "executed" and result.external_id == "OPS-501", result
        description = standin.created[0]["description"]
        assert isinstance(description, dict if version == "3" else str)
        found = tickets.reconcile(req)
        assert found is not None and found.external_id == "OPS-501"
        WorkNotes(jira=tickets).add("OPS-501", "outcome: verified")
        assert len(standin.comments["OPS-501"]) == 1


def test_work_notes_refuse_records_they_cannot_write() -> None:
    notes = WorkNotes()
    assert not notes.writable("PD-42") and not notes.writable("INC0010001")
    with pytest.raises(Exception, match="no configured ITSM system"):
        notes.add("PD-42", "x")
