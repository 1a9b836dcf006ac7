"""Live ITSM backends over real HTTP against local stand-ins.

No ServiceNow, Jira or PagerDuty can run here, so every test talks over HTTP on 127.0.0.1 to a
stand-in server (tests/standins/*_standin.py) that checks requests the way the real API does:
credentials (401 otherwise), Accept/Content-Type headers, the query language (ServiceNow encoded
queries, JQL, PagerDuty's parameters; malformed ones get 400), pagination parameters, and that
serves several pages. What these tests prove is our side of the wire: the requests we build, the
pagination we follow, the retries and their limits, the mapping to ItsmIncident/ItsmChange and
the failure isolation in LiveItsm. They cannot prove a real instance's quirks beyond those.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from tests.standins.itsm_base import ApiStandIn
from tests.standins.jira_standin import Issue, JiraStandIn
from tests.standins.pagerduty_standin import PagerDutyStandIn
from tests.standins.servicenow_standin import ServiceNowStandIn
from tools.estate import JiraConfig, PagerDutyConfig, ServiceNowConfig
from tools.isolation import collecting_notes
from tools.itsm.jira import JiraItsm
from tools.itsm.live import ApiError, HttpApi, LiveItsm
from tools.itsm.pagerduty import PagerDutyItsm
from tools.itsm.servicenow import ServiceNowItsm
from tools.itsm.views import open_incidents, recent_changes
from tools.sources import ItsmSource, SourceError, Sources, ToolContext
from tools.world import parse_ts

pytestmark = pytest.mark.live
NOW = parse_ts("2026-07-08T10:10:00Z")
START, END = NOW - timedelta(hours=1), NOW


# --- stand-ins with data ---------------------------------------------------------------------------


@pytest.fixture
def servicenow() -> Iterator[ServiceNowStandIn]:
    sn = ServiceNowStandIn(username="opscopilot", password="s3cret")
    for number, text, state, prio, ci, opened, group in [
        (
            "INC0010001",
            "Payments API 5xx spike",
            "2",
            "1",
            "payments-api",
            "2026-07-08 09:40:00",
            "Payments SRE",
        ),
        ("INC0010002", "payments-db replication lag", "1", "2", "payments-db", "2026-07-08 09:50:00", "DBA"),
        ("INC0010003", "Disk 85% on reporting", "3", "3", "reporting-db", "2026-07-07 22:00:00", "DBA"),
        ("INC0010004", "VPN tunnel flaps", "2", "3", "edge-fw-01", "2026-07-08 08:00:00", "Network"),
        ("INC0010005", "Label printer offline", "1", "4", "lab^printer", "2026-07-08 07:00:00", None),
        (
            "INC0010006",
            "Old payments outage",
            "7",
            "2",
            "payments-api",
            "2026-07-01 12:00:00",
            "Payments SRE",
        ),
        ("INC0010007", "Login slow", "2", "2", "auth-api", "2026-07-08 10:00:00", "Identity"),
        ("INC0010008", "Cert expiry warning", "1", "3", "auth-api", "2026-07-06 10:00:00", "Identity"),
    ]:
        sn.add_incident(number, text, state=state, priority=prio, ci=ci, opened_at=opened, group=group)
    for number, text, ci, start, end in [
        (
            "CHG0030001",
            "payments-db index rebuild",
            "payments-db",
            "2026-07-08 09:00:00",
            "2026-07-08 09:45:00",
        ),
        ("CHG0030002", "Firewall rule push", "edge-fw-01", "2026-07-08 09:55:00", None),
        ("CHG0030003", "Kernel patching", "reporting-db", "2026-07-07 20:00:00", "2026-07-07 21:00:00"),
        ("CHG0030004", "DNS migration", "dns-01", "2026-07-08 11:00:00", "2026-07-08 12:00:00"),
        (
            "CHG0030005",
            "Payments API deploy v42",
            "payments-api",
            "2026-07-08 08:00:00",
            "2026-07-08 12:00:00",
        ),
        ("CHG0030006", "Unscheduled idea", "payments-api", None, None),
    ]:
        sn.add_change(number, text, ci=ci, start=start, end=end)
    with sn:
        yield sn


@pytest.fixture
def jira() -> Iterator[JiraStandIn]:
    j = JiraStandIn(email="ops@example.com", api_token="jira-token")
    j.components = {"OPS": ["payments-api", "auth-api"], "NET": ["core-sw-01"], "HR": []}
    created = "2026-07-0{}T{}:00.000+0000"
    j.issues = [
        Issue(
            "OPS-101",
            "Payments API latency",
            "In Progress",
            "In Progress",
            "Highest",
            ["payments-api"],
            [],
            created.format(8, "09:45"),
        ),
        Issue(
            "OPS-102",
            "Checkout errors",
            "Open",
            "To Do",
            "High",
            [],
            ["payments-api"],
            created.format(8, "09:50"),
        ),
        Issue(
            "OPS-103", "Rotate certs", "Done", "Done", "Medium", ["auth-api"], [], created.format(7, "09:00")
        ),
        Issue(
            "OPS-104", "Login page 502", "Open", "To Do", "P2", ["auth-api"], [], created.format(8, "08:00")
        ),
        Issue("OPS-105", "Slow reports", "Open", "To Do", "Low", [], [], created.format(8, "07:00")),
        Issue(
            "OPS-106",
            "Queue backlog",
            "In Progress",
            "In Progress",
            "Medium",
            [],
            ["queue"],
            created.format(8, "06:00"),
        ),
        Issue(
            "NET-7",
            "Core switch CRC errors",
            "Open",
            "To Do",
            "Highest",
            ["core-sw-01"],
            [],
            created.format(8, "10:05"),
        ),
        Issue(
            "HR-1",
            "Payroll question",
            "Open",
            "To Do",
            "Low",
            [],
            ["payments-api"],
            created.format(8, "10:06"),
        ),
    ]
    with j:
        yield j


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyStandIn]:
    pd = PagerDutyStandIn(token="pd-token", now=NOW)
    pd.services = {"PSVC1": "payments-api", "PSVC2": "auth-api", "PSVC3": "edge-fw-01"}
    for number, title, status, service, urgency, prio, created in [
        (901, "Payments API error rate > 5%", "triggered", "PSVC1", "high", "P1", "2026-07-08T09:42:00Z"),
        (902, "Payments API latency p99", "acknowledged", "PSVC1", "high", None, "2026-07-08T09:44:00Z"),
        (903, "Auth token errors", "triggered", "PSVC2", "low", None, "2026-07-08T09:00:00Z"),
        (904, "Auth pods restarting", "acknowledged", "PSVC2", "high", None, "2026-07-08T08:30:00Z"),
        (905, "Payments queue depth", "triggered", "PSVC1", "low", None, "2026-06-01T08:00:00Z"),
        (906, "Old payments incident", "resolved", "PSVC1", "high", None, "2026-07-07T08:00:00Z"),
        (907, "Firewall CPU", "triggered", "PSVC3", "high", None, "2026-07-08T09:00:00Z"),
    ]:
        pd.add_incident(
            number, title, status=status, service=service, urgency=urgency, priority=prio, created_at=created
        )
    pd.oncalls = []
    for n, (policy, level) in enumerate(
        [("Payments", 1), ("Payments", 2), ("Identity", 1), ("Identity", 2), ("Network", 1)]
    ):
        scheduled = level == 1
        pd.oncalls.append(
            {
                "user": {"summary": f"Engineer {n}", "email": f"e{n}@example.com"},
                "escalation_level": level,
                "escalation_policy": {"summary": policy},
                "schedule": {"summary": f"{policy} rota"} if scheduled else None,
                "start": "2026-07-08T08:00:00Z" if scheduled else None,
                "end": "2026-07-09T08:00:00Z" if scheduled else None,
            }
        )
    pd.change_events = [
        {"id": "CE1", "summary": "Deploy payments-api v43", "timestamp": "2026-07-08T09:35:00Z",
         "services": [{"id": "PSVC1", "summary": "payments-api"}]},
        {"id": "CE2", "summary": "Feature flag auth-v2 on", "timestamp": "2026-07-08T09:58:00Z",
         "services": [{"id": "PSVC2", "summary": "auth-api"}]},
        {"id": "CE3", "summary": "Deploy payments-api v41", "timestamp": "2026-07-08T06:00:00Z",
         "services": [{"id": "PSVC1", "summary": "payments-api"}]},
        {"id": "CE4", "summary": "Firewall firmware", "timestamp": "2026-07-08T09:30:00Z",
         "services": [{"id": "PSVC3", "summary": "edge-fw-01"}]},
    ]  # fmt: skip
    with pd:
        yield pd


def sn_backend(sn: ApiStandIn, retries: int = 2, **kw: object) -> ServiceNowItsm:
    cfg = {
        "url": sn.url,
        "username": "opscopilot",
        "password": "s3cret",
        "page_size": 2,
        "timeout_s": 2.0,
    } | kw
    return ServiceNowItsm(ServiceNowConfig.model_validate(cfg), retries=retries)


def jira_backend(j: ApiStandIn, api: str = "cloud", **kw: object) -> JiraItsm:
    cfg = {
        "url": j.url,
        "email": "ops@example.com",
        "api_token": "jira-token",
        "projects": ["OPS", "NET"],
    } | kw
    return JiraItsm(JiraConfig.model_validate(cfg), api=api, page_size=2, retries=2)  # type: ignore[arg-type]


def pd_backend(pd: ApiStandIn, **kw: object) -> PagerDutyItsm:
    cfg = {"url": pd.url, "token": "pd-token", "service_ids": ["PSVC1", "PSVC2"], "timeout_s": 2.0} | kw
    return PagerDutyItsm(PagerDutyConfig.model_validate(cfg), page_size=2, retries=2, clock=lambda: NOW)


def ctx_for(source: ItsmSource) -> ToolContext:
    return ToolContext(
        sources=Sources(itsm=source, label="live"),
        now=NOW,
        start=START,
        end=END,
        history_start=NOW - timedelta(days=7),
    )


# --- ServiceNow -------------------------------------------------------------------------------------


def test_servicenow_open_incidents_across_pages(servicenow: ServiceNowStandIn) -> None:
    """Stand-in ServiceNow: 7 active incidents in pages of 2 (offsets 0, 2, 4, 6), newest first;
    state/priority/CI/group are display values, opened_at the UTC value (not the display value,
    which is in the API user's zone)."""
    found = sn_backend(servicenow).incidents(open_only=True)
    assert [i.number for i in found][:3] == ["INC0010007", "INC0010002", "INC0010001"]
    assert len(found) == 7 and "INC0010006" not in {i.number for i in found}
    first = next(i for i in found if i.number == "INC0010001")
    assert (first.state, first.priority, first.cmdb_ci, first.assignment_group) == (
        "In Progress", "1 - Critical", "payments-api", "Payments SRE",
    )  # fmt: skip
    assert first.opened_at == datetime(2026, 7, 8, 9, 40, tzinfo=UTC)
    calls = servicenow.requests_to("/api/now/table/incident")
    assert [c.one("sysparm_offset") for c in calls] == ["0", "2", "4", "6"]
    assert all(c.one("sysparm_limit") == "2" and c.one("sysparm_display_value") == "all" for c in calls)
    assert calls[0].one("sysparm_query") == "active=true^ORDERBYDESCopened_at"
    assert calls[0].headers["accept"] == "application/json" and calls[0].basic() == ("opscopilot", "s3cret")


def test_servicenow_incidents_by_ci_escape_the_caret(servicenow: ServiceNowStandIn) -> None:
    backend = sn_backend(servicenow)
    assert [i.number for i in backend.incidents(ci="payments-api", open_only=False)] == [
        "INC0010001",
        "INC0010006",
    ]
    (printer,) = backend.incidents(ci="lab^printer")
    assert printer.number == "INC0010005" and printer.assignment_group is None
    query = servicenow.seen[-1].one("sysparm_query")
    assert query == "active=true^cmdb_ci.name=lab^^printer^ORDERBYDESCopened_at"


def test_servicenow_changes_overlapping_the_window(servicenow: ServiceNowStandIn) -> None:
    """start_date <= end AND (end_date >= start OR end_date empty), in ServiceNow's UTC format."""
    changes = sn_backend(servicenow).changes(start=START, end=END)
    assert [c.number for c in changes] == ["CHG0030002", "CHG0030001", "CHG0030005"]
    ongoing = changes[0]
    assert ongoing.end_date is None and ongoing.state == "Implement" and ongoing.risk == "Moderate"
    query = servicenow.seen[0].one("sysparm_query")
    assert query == (
        "start_date<=2026-07-08 10:10:00^end_date>=2026-07-08 09:10:00^ORend_dateISEMPTY"
        "^ORDERBYDESCstart_date"
    )
    only = sn_backend(servicenow).changes(start=START, end=END, ci="payments-db")
    assert [c.number for c in only] == ["CHG0030001"]


def test_servicenow_429_retry_after_then_success(servicenow: ServiceNowStandIn) -> None:
    servicenow.fail_next(
        "/api/now/table/incident", 429, headers={"Retry-After": "1"},
        body={"error": {"message": "Too many requests"}, "status": "failure"},
    )  # fmt: skip
    started = time.monotonic()
    found = sn_backend(servicenow).incidents()
    took = time.monotonic() - started
    assert len(found) == 7 and 1.0 <= took < 3.0
    assert len(servicenow.requests_to("/api/now/table/incident")) == 5  # the 429, then 4 pages


def test_servicenow_5xx_backs_off_then_gives_up_with_the_reason(servicenow: ServiceNowStandIn) -> None:
    servicenow.fail_next(
        "/api/now/table/change_request", 503, times=5, body={"error": {"message": "maintenance"}}
    )
    with pytest.raises(ApiError, match=r"still failing after 3 tries: HTTP 503.*maintenance"):
        sn_backend(servicenow).changes(start=START, end=END)
    assert len(servicenow.requests_to("/api/now/table/change_request")) == 3


def test_servicenow_401_is_reported_clearly_and_not_retried(servicenow: ServiceNowStandIn) -> None:
    backend = sn_backend(servicenow, password="wrong-password")
    with pytest.raises(SourceError) as err:
        backend.incidents()
    message = str(err.value)
    assert "ServiceNow authentication failed (HTTP 401)" in message and "servicenow.password" in message
    assert "User Not Authenticated" in message and "wrong-password" not in message
    assert len(servicenow.seen) == 1
    (check,) = backend.doctor()
    assert check.reachable and check.authenticated is False and "servicenow.password" in check.fix


def test_servicenow_bearer_token_and_doctor(servicenow: ServiceNowStandIn) -> None:
    servicenow.token = "oauth-abc"
    backend = ServiceNowItsm(ServiceNowConfig(url=servicenow.url, token=SecretStr("oauth-abc"), page_size=50))
    assert len(backend.incidents()) == 7
    assert servicenow.seen[-1].headers["authorization"] == "Bearer oauth-abc"
    (check,) = backend.doctor()
    assert check.ok and check.latency_ms is not None and check.target == servicenow.url
    servicenow.forbidden_tables = {"change_request"}
    (check,) = backend.doctor()
    assert check.authenticated and check.permissions_ok is False and "change_request" in check.fix


def test_servicenow_timeout_does_not_hang(servicenow: ServiceNowStandIn) -> None:
    """The stand-in holds each request 3 s; the client gives up after 0.3 s x 2 tries + backoff."""
    servicenow.stall_next("/api/now/table/incident", 3.0, times=2)
    backend = sn_backend(servicenow, retries=1, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(ApiError, match="timed out after 2 tries"):
        backend.incidents()
    assert time.monotonic() - started < 2.0


def test_the_servicenow_standin_rejects_what_an_instance_would_not_serve(
    servicenow: ServiceNowStandIn,
) -> None:
    """The stand-in's checks themselves: a malformed query, an unknown field, a bad date."""
    api = HttpApi("ServiceNow", servicenow.url, timeout_s=2, auth=("opscopilot", "s3cret"),
                  headers={"Accept": "application/json"}, retries=2)  # fmt: skip
    for query, why in [
        ("active=true^bogus", "Malformed"),
        ("no_such_field=1", "Invalid field"),
        ("opened_at<=tomorrow", "Invalid date"),
        ("^ORactive=true", "^OR without a term"),
    ]:
        with pytest.raises(ApiError, match=r"HTTP 400") as err:
            api.get("/api/now/table/incident", params={"sysparm_query": query})
        assert why in str(err.value)
    assert len(servicenow.seen) == 4  # a 400 is never retried
    with pytest.raises(ApiError, match="HTTP 406"):
        httpx_api = HttpApi("ServiceNow", servicenow.url, timeout_s=2, auth=("opscopilot", "s3cret"),
                            headers={"Accept": "text/xml"})  # fmt: skip
        httpx_api.get("/api/now/table/incident")


# --- Jira ----------------------------------------------------------------------------------------------


def test_jira_cloud_search_pages_with_next_page_token(jira: JiraStandIn) -> None:
    """Stand-in Jira Cloud: POST /rest/api/3/search/jql, 6 open issues of OPS and NET in 3 pages."""
    found = jira_backend(jira).incidents()
    assert [i.number for i in found] == ["NET-7", "OPS-102", "OPS-101", "OPS-104", "OPS-105", "OPS-106"]
    calls = jira.requests_to("/rest/api/3/search/jql")
    assert len(calls) == 3 and "nextPageToken" not in calls[0].body
    assert calls[1].body["nextPageToken"] and calls[0].body["maxResults"] == 2
    assert (
        calls[0].body["jql"] == 'project in ("OPS", "NET") AND statusCategory != Done ORDER BY created DESC'
    )
    assert calls[0].basic() == ("ops@example.com", "jira-token")
    by = {i.number: i for i in found}
    assert (by["OPS-101"].priority, by["OPS-101"].state, by["OPS-101"].cmdb_ci) == (
        "1 - Highest", "In Progress", "payments-api",
    )  # fmt: skip
    assert by["OPS-102"].cmdb_ci == "payments-api"  # from its label
    assert by["OPS-104"].priority == "P2" and by["OPS-105"].cmdb_ci is None
    assert by["OPS-101"].opened_at == datetime(2026, 7, 8, 9, 45, tzinfo=UTC)


def test_jira_server_search_pages_with_start_at(jira: JiraStandIn) -> None:
    found = jira_backend(jira, api="server").incidents(ci="payments-api")
    assert [i.number for i in found] == ["OPS-102", "OPS-101"]
    every = jira_backend(jira, api="server").incidents(open_only=False)
    assert len(every) == 7 and "HR-1" not in {i.number for i in every}
    starts = [c.one("startAt") for c in jira.requests_to("/rest/api/2/search")][1:]
    assert starts == ["0", "2", "4", "6"]


def test_jira_401_and_a_missing_project(jira: JiraStandIn) -> None:
    bad = jira_backend(jira, api_token="expired")
    with pytest.raises(SourceError, match=r"Jira authentication failed \(HTTP 401\).*jira.api_token"):
        bad.incidents()
    assert len(jira.seen) == 1
    (check,) = jira_backend(jira, projects=["OPS", "NOPE"]).doctor()
    assert check.authenticated and check.permissions_ok is False and "NOPE" in check.fix
    assert jira_backend(jira).configuration_items() == {"payments-api", "auth-api", "core-sw-01"}


def test_the_jira_standin_rejects_bad_jql(jira: JiraStandIn) -> None:
    api = HttpApi("Jira", jira.url, timeout_s=2, auth=("ops@example.com", "jira-token"))
    for jql, why in [
        ("project = OPS AND", "Expecting more"),
        ("projekt = OPS", "does not exist"),
        ("statusCategory != Done", "Unbounded JQL"),
        ('project in ("OPS" ORDER BY created', "Expecting"),
    ]:
        with pytest.raises(ApiError, match="HTTP 400") as err:
            api.post("/rest/api/3/search/jql", {"jql": jql, "maxResults": 5})
        assert why in str(err.value)


# --- PagerDuty ------------------------------------------------------------------------------------------


def test_pagerduty_open_incidents_across_pages(pagerduty: PagerDutyStandIn) -> None:
    """Stand-in PagerDuty: 5 open incidents of the two configured services in pages of 2."""
    found = pd_backend(pagerduty).incidents()
    assert [i.number for i in found] == ["PD-902", "PD-901", "PD-903", "PD-904", "PD-905"]
    calls = pagerduty.requests_to("/incidents")
    assert [c.one("offset") for c in calls] == ["0", "2", "4"]
    q = calls[0].query
    assert q["statuses[]"] == ["triggered", "acknowledged"] and q["service_ids[]"] == ["PSVC1", "PSVC2"]
    assert q["date_range"] == ["all"]
    assert calls[0].headers["authorization"] == "Token token=pd-token"
    assert calls[0].headers["accept"] == "application/vnd.pagerduty+json;version=2"
    by = {i.number: i for i in found}
    assert by["PD-901"].priority == "P1" and by["PD-903"].priority == "4 - low urgency"
    assert (by["PD-901"].cmdb_ci, by["PD-901"].assignment_group) == ("payments-api", "Payments on-call")
    assert [i.number for i in pd_backend(pagerduty).incidents(ci="auth-api")] == ["PD-903", "PD-904"]


def test_pagerduty_oncalls_changes_and_429(pagerduty: PagerDutyStandIn) -> None:
    pagerduty.fail_next(
        "/oncalls", 429, headers={"Retry-After": "1"}, body={"error": {"message": "Rate Limit Exceeded"}}
    )
    backend = pd_backend(pagerduty)
    oncalls = backend.oncalls()
    assert len(oncalls) == 5 and len(pagerduty.requests_to("/oncalls")) == 4  # 429 + 3 pages
    first = oncalls[0]
    assert (first.escalation_policy, first.level, first.user, first.schedule) == (
        "Identity", 1, "Engineer 2", "Identity rota",
    )  # fmt: skip
    assert first.end == datetime(2026, 7, 9, 8, tzinfo=UTC)
    changes = backend.changes(start=START, end=END)
    assert {c.number: c.cmdb_ci for c in changes} == {"CE1": "payments-api", "CE2": "auth-api"}
    assert backend.configuration_items() == {"payments-api", "auth-api"}


def test_pagerduty_bad_token_and_long_retry_after(pagerduty: PagerDutyStandIn) -> None:
    with pytest.raises(SourceError, match=r"PagerDuty authentication failed \(HTTP 401\).*pagerduty.token"):
        pd_backend(pagerduty, token="nope").incidents()
    pagerduty.fail_next("/incidents", 429, headers={"Retry-After": "120"})
    started = time.monotonic()
    with pytest.raises(ApiError, match=r"HTTP 429 \(Retry-After 120 s\)"):
        pd_backend(pagerduty).incidents()
    assert time.monotonic() - started < 1.0  # a wait longer than max_wait_s is not slept through


# --- LiveItsm over all three ----------------------------------------------------------------------------


def test_live_itsm_merges_and_feeds_the_views(
    servicenow: ServiceNowStandIn, jira: JiraStandIn, pagerduty: PagerDutyStandIn
) -> None:
    live = LiveItsm(sn_backend(servicenow), jira_backend(jira), pd_backend(pagerduty))
    incidents = live.incidents()
    assert len(incidents) == 7 + 6 + 5 and not live.failures
    assert incidents[0].number == "NET-7"  # newest across all three
    assert {"payments-api", "payments-db", "core-sw-01", "auth-api"} <= live.configuration_items()
    assert [o.escalation_policy for o in live.oncalls()][:2] == ["Identity", "Identity"]

    result = open_incidents.run(ctx_for(live), "payments-api")
    numbers = [f.data["number"] for f in result.findings]
    assert {"INC0010001", "OPS-101", "OPS-102", "PD-901", "PD-902"} <= set(numbers)
    assert result.findings[0].severity.value == "critical"

    changes = recent_changes.run(ctx_for(live), "payments-api")
    by = {f.data["number"]: f.data["relevance"] for f in changes.findings}
    assert by == {"CHG0030005": "exact CI", "CE1": "exact CI", "CHG0030001": "related CI"}


def test_live_itsm_isolates_a_failing_system(servicenow: ServiceNowStandIn, jira: JiraStandIn) -> None:
    servicenow.stall_next("/api/now/table", 3.0, times=2)
    live = LiveItsm(
        sn_backend(servicenow, retries=1, timeout_s=0.3), jira_backend(jira, api_token="expired"), None
    )
    started = time.monotonic()
    with pytest.raises(SourceError, match="every ITSM system failed"):
        live.incidents()
    assert time.monotonic() - started < 2.0

    live = LiveItsm(sn_backend(servicenow), jira_backend(jira, api_token="expired"), None)
    with collecting_notes() as notes:
        found = live.incidents()
    assert len(found) == 7 and set(live.failures) == {"jira"} and "HTTP 401" in live.failures["jira"]
    assert len(notes) == 1 and notes[0].startswith(
        "ITSM jira did not answer (incidents)"
    )  # reaches the report
    result = open_incidents.run(ctx_for(live), "payments-api")
    assert result.evidence[0].error is None and "INC0010001" in result.findings[0].title
    (sn_check, jira_check) = live.doctor()
    assert sn_check.ok and jira_check.authenticated is False


def test_live_itsm_with_every_system_down_is_evidence_not_a_crash() -> None:
    live = LiveItsm(
        ServiceNowItsm(
            ServiceNowConfig(url="http://127.0.0.1:9", username="u", password=SecretStr("p"), timeout_s=0.5),
            retries=0,
        )
    )
    result = recent_changes.run(ctx_for(live), "payments-api")
    (ev,) = result.evidence
    assert ev.error and "reachable" in ev.error and not result.findings
    assert live.configuration_items() == set()
    (check,) = live.doctor()
    assert not check.reachable and "reachable" in check.fix


def test_http_date_retry_after(servicenow: ServiceNowStandIn) -> None:
    when = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    servicenow.fail_next("/api/now/table/incident", 503, headers={"Retry-After": when})
    started = time.monotonic()
    assert len(sn_backend(servicenow).incidents()) == 7
    assert len(servicenow.seen) == 5 and time.monotonic() - started < 2.5


def test_live_itsm_from_settings_as_the_server_builds_it(
    servicenow: ServiceNowStandIn, jira: JiraStandIn
) -> None:
    """server/runtime.py passes the estate's settings objects. A Jira URL that is not
    *.atlassian.net selects the Server/Data Center search; PagerDuty without a token is reported
    as misconfigured instead of stopping the server."""
    live = LiveItsm(
        servicenow=ServiceNowConfig(url=servicenow.url, username="opscopilot", password=SecretStr("s3cret")),
        jira=JiraConfig(
            url=jira.url, email="ops@example.com", api_token=SecretStr("jira-token"), projects=["OPS"]
        ),
        pagerduty=PagerDutyConfig(url="http://127.0.0.1:9"),
    )
    found = live.incidents(ci="auth-api")
    assert {i.number for i in found} == {"INC0010007", "INC0010008", "OPS-104"}
    assert jira.requests_to("/rest/api/2/search") and not jira.requests_to("/rest/api/3")
    assert "misconfigured" in live.failures["pagerduty"] and "token" in live.failures["pagerduty"]
    checks = {c.source: c for c in live.doctor()}
    assert checks["servicenow"].ok and checks["jira"].ok
    assert not checks["pagerduty"].reachable and "token" in checks["pagerduty"].fix
    assert live.oncalls() == []


def test_a_login_page_instead_of_the_api_is_named(servicenow: ServiceNowStandIn) -> None:
    """A hibernating or SSO-only instance answers with a redirect or an HTML page, not JSON."""
    servicenow.fail_next("/api/now/table/incident", 302, headers={"Location": "https://login.example/sso"})
    with pytest.raises(
        ApiError, match=r"redirected \(HTTP 302\) to https://login.example/sso: check the URL"
    ):
        sn_backend(servicenow).incidents()
    servicenow.fail_next("/api/now/table/incident", 200, headers={"Content-Type": "text/html"})
    with pytest.raises(ApiError, match="HTTP 200 with text/html, not JSON: check the URL"):
        sn_backend(servicenow).incidents()


def test_a_dead_api_opens_its_circuit() -> None:
    """Three calls in a row without a server open the circuit: the fourth fails at once."""
    backend = ServiceNowItsm(
        ServiceNowConfig(url="http://127.0.0.1:9", username="u", password=SecretStr("p"), timeout_s=0.5),
        retries=0,
    )
    for _ in range(3):
        with pytest.raises(ApiError, match="reachable"):
            backend.incidents()
    with pytest.raises(ApiError, match=r"not called: circuit open after 3 connection failures"):
        backend.incidents()
    (check,) = backend.doctor()
    assert check.circuit == "open" and not check.reachable and "circuit open" in check.detail
