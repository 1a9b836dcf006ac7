"""Knowledge ingest from ServiceNow and Jira over real HTTP against local stand-ins.

No ServiceNow or Jira can run here, so the real clients talk to the stand-ins in tests/standins/,
which check requests as the real APIs do (credentials, encoded queries and JQL that must parse,
known columns and fields, pagination) and answer as they do: ServiceNow keeps work notes in
sys_journal_field, Jira Cloud returns descriptions and comments in Atlassian Document Format and
Server as plain text. What these tests prove is our side: the queries for resolved records since a
watermark, the journal reads in batches, the mapping to past incidents and the incremental ingest.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.standins.jira_standin import Issue, JiraStandIn
from tests.standins.servicenow_standin import ServiceNowStandIn
from tools.estate import JiraConfig, ServiceNowConfig
from tools.itsm.jira import JiraItsm, rich_text
from tools.itsm.servicenow import ServiceNowItsm
from tools.knowledge.ingest import ingest_tickets, ticket_doc
from tools.knowledge.retrieval import Query
from tools.knowledge.store import KnowledgeStore

pytestmark = pytest.mark.live


@pytest.fixture
def servicenow() -> Iterator[ServiceNowStandIn]:
    sn = ServiceNowStandIn(username="opscopilot", password="s3cret")
    sn.add_incident(
        "INC0020001", "Orders DB log full", state="7", ci="sql-prod-01", service="Orders",
        opened_at="2026-05-01 09:00:00", resolved_at="2026-05-01 10:30:00", updated_at="2026-05-02 08:00:00",
        description="Error 9002: the transaction log for database Orders is full due to LOG_BACKUP.",
        close_code="Solved (Permanently)", category="database",
        close_notes="Root cause: log backup job failed since the password rotation.\n"
        "Fix: updated the backup job credentials and took a log backup.",
    )  # fmt: skip
    sn.add_incident(
        "INC0020002", "VPN tunnel flapping", state="6", ci="edge-fw-01", opened_at="2026-05-03 11:00:00",
        resolved_at="2026-05-03 12:00:00", updated_at="2026-05-03 12:05:00",
        description="IPsec SA renegotiates every minute", close_notes="Aligned the DPD timers on both ends.",
    )  # fmt: skip
    sn.add_incident(
        "INC0020003", "Still open: disk 90%", state="2", ci="rpt-db", opened_at="2026-05-04 09:00:00"
    )
    for i in range(4, 9):  # more incidents than one journal batch page of 2 holds
        sn.add_incident(
            f"INC002000{i}", f"Old resolved incident {i}", state="7", opened_at="2026-04-01 09:00:00",
            resolved_at="2026-04-01 10:00:00", updated_at=f"2026-04-0{i} 10:00:00", close_notes=f"fixed {i}",
        )  # fmt: skip
    sn.add_work_note(
        "INC0020001", "Log is 100% used; log_reuse_wait_desc = LOG_BACKUP", at="2026-05-01 09:10:00"
    )
    sn.add_work_note("INC0020001", "Backup job fails: login failed for svc_backup", at="2026-05-01 09:40:00")
    sn.add_work_note("INC0020002", "Peer DPD is 10 s, ours 30 s", at="2026-05-03 11:30:00", by="netops")
    with sn:
        yield sn


def _sn(sn: ServiceNowStandIn) -> ServiceNowItsm:
    cfg = ServiceNowConfig(url=sn.url, username="opscopilot", password="s3cret", page_size=2)  # type: ignore[arg-type]
    return ServiceNowItsm(cfg, retries=0)


def test_servicenow_resolved_incidents_with_close_and_work_notes(servicenow: ServiceNowStandIn) -> None:
    tickets = {t.number: t for t in _sn(servicenow).resolved_incidents()}
    assert set(tickets) == {
        "INC0020001",
        "INC0020002",
        *(f"INC002000{i}" for i in range(4, 9)),
    }  # not the open one
    log_full = tickets["INC0020001"]
    assert log_full.cis == ["sql-prod-01"] and log_full.services == ["Orders"]
    assert log_full.close_code == "Solved (Permanently)" and log_full.labels == ["Database"]
    assert [n.text for n in log_full.notes] == [
        "Log is 100% used; log_reuse_wait_desc = LOG_BACKUP",
        "Backup job fails: login failed for svc_backup",
    ]
    assert log_full.resolved_at == datetime(
        2026, 5, 1, 10, 30, tzinfo=UTC
    )  # the UTC value, not the display one
    assert log_full.url == f"{servicenow.url}/nav_to.do?uri=incident.do?sys_id=inc-INC0020001"
    assert tickets["INC0020002"].notes[0].by == "netops"
    journal = servicenow.requests_to("/api/now/table/sys_journal_field")
    assert journal and all(
        r.one("sysparm_query", "").startswith("name=incident^element=work_notes^element_idIN")
        for r in journal
    )
    incidents = servicenow.requests_to("/api/now/table/incident")
    assert incidents[0].one("sysparm_query") == "stateIN6,7^ORDERBYsys_updated_on"
    assert len(incidents) == 4  # 7 rows in pages of 2

    doc = ticket_doc(log_full)
    assert doc.id == "INC0020001" and doc.source == "servicenow" and doc.url == log_full.url
    assert doc.root_cause == "log backup job failed since the password rotation."
    assert doc.resolution == "updated the backup job credentials and took a log backup."
    assert doc.symptoms.startswith("Error 9002") and doc.services == ["Orders", "sql-prod-01"]
    assert [s.heading for s in doc.sections] == ["Work notes"] and "svc_backup" in doc.sections[0].text


def test_servicenow_ingest_is_incremental_from_the_watermark(servicenow: ServiceNowStandIn) -> None:
    client = _sn(servicenow)
    with KnowledgeStore(collection_name="sn-ingest", owned=True) as store:
        first = ingest_tickets(store, "servicenow", client.resolved_incidents)
        assert len(first.added) == 7 and store.watermark("servicenow") == "2026-05-03T12:05:00+00:00"
        hit = store.retrieve(Query(text="Orders database log is full, 9002", k=1))[0]
        assert hit.doc.id == "INC0020001" and hit.doc.url and "sys_id=inc-INC0020001" in hit.doc.url
        servicenow.seen.clear()
        again = ingest_tickets(store, "servicenow", client.resolved_incidents)
        query = servicenow.requests_to("/api/now/table/incident")[0].one("sysparm_query")
        assert query == "stateIN6,7^sys_updated_on>=2026-05-03 12:05:00^ORDERBYsys_updated_on"
        assert (again.added, again.updated, again.unchanged) == ([], [], 1)
        servicenow.add_incident(
            "INC0020009", "Replica lag on pg-orders-02", state="6", opened_at="2026-05-05 09:00:00",
            resolved_at="2026-05-05 10:00:00", updated_at="2026-05-05 10:05:00",
            close_notes="restarted the WAL receiver",
        )  # fmt: skip
        third = ingest_tickets(store, "servicenow", client.resolved_incidents)
        assert third.added == ["INC0020009"] and store.size() == 8
        assert store.watermark("servicenow") == "2026-05-05T10:05:00+00:00"
        full = ingest_tickets(store, "servicenow", client.resolved_incidents, full=True)
        assert full.unchanged == 8 and not full.changed


DEADLOCK_DESCRIPTION = "SQLSTATE 40P01 deadlock detected\nRoot cause: two jobs locked rows in opposite order"


@pytest.fixture
def jira() -> Iterator[JiraStandIn]:
    j = JiraStandIn(email="ops@example.com", api_token="jira-token")
    j.components = {"OPS": ["pg-orders-01"]}
    j.issues = [
        Issue(
            "OPS-7", "Deadlocks in checkout", "Done", "Done", "High", ["pg-orders-01"], ["postgres"],
            "2026-05-01T09:00:00.000+0000",
            description=DEADLOCK_DESCRIPTION,
            resolution="Fixed", resolutiondate="2026-05-01T11:00:00.000+0000",
            updated="2026-05-01T11:00:00.000+0000",
            comments=[("ann", "2026-05-01T10:00:00.000+0000", "Both jobs now lock by ascending id.")],
        ),
        Issue("OPS-8", "Open: slow search", "In Progress", "In Progress", "Low", [], [],
              "2026-05-02T09:00:00.000+0000"),
        Issue("NET-3", "Other project", "Done", "Done", "Low", [], [], "2026-05-02T09:00:00.000+0000",
              resolution="Done", updated="2026-05-02T09:00:00.000+0000"),
    ]  # fmt: skip
    with j:
        yield j


@pytest.mark.parametrize("api", ["cloud", "server"])
def test_jira_resolved_issues_with_comments(jira: JiraStandIn, api: str) -> None:
    cfg = JiraConfig(url=jira.url, email="ops@example.com", api_token="jira-token", projects=["OPS"])  # type: ignore[arg-type]
    client = JiraItsm(cfg, api=api, retries=0)  # type: ignore[arg-type]
    (ticket,) = client.resolved_issues(datetime(2026, 5, 1, 10, 0, tzinfo=UTC))
    request = jira.seen[-1]
    jql = request.body["jql"] if api == "cloud" else request.one("jql")
    assert (
        jql == 'project in ("OPS") AND statusCategory = Done AND updated >= "2026-04-30 10:00" '
        "ORDER BY updated ASC"
    )
    assert ticket.number == "OPS-7" and ticket.url == f"{jira.url}/browse/OPS-7"
    assert (
        ticket.description
        == "SQLSTATE 40P01 deadlock detected\nRoot cause: two jobs locked rows in opposite order"
    )
    assert ticket.resolution == "Fixed: Both jobs now lock by ascending id."
    assert ticket.notes[0].by == "ann" and ticket.cis == ["pg-orders-01"] and ticket.labels == ["postgres"]
    doc = ticket_doc(ticket)
    assert doc.root_cause == "two jobs locked rows in opposite order"
    assert doc.symptoms == "SQLSTATE 40P01 deadlock detected"
    assert doc.resolution == "Fixed: Both jobs now lock by ascending id."
    assert "Fixed" in doc.tags and doc.source == "jira"
    assert client.resolved_issues(datetime(2026, 6, 1, tzinfo=UTC)) == []


def test_atlassian_document_format_to_text() -> None:
    adf = {
        "type": "doc",
        "content": [
            {"type": "heading", "content": [{"type": "text", "text": "Impact"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "a"}, {"type": "hardBreak"},
                                              {"type": "text", "text": "b"}]},
            {"type": "bulletList", "content": [{"type": "listItem", "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "c"}]}]}]},
        ],
    }  # fmt: skip
    assert rich_text(adf) == "Impact\na\nb\nc\n"
    assert rich_text("plain") == "plain" and rich_text(None) == ""
