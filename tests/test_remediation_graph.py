"""Every path through the graph after the approval gate, driven as the service will drive it
(build_graph + a checkpointer + Command(resume=decision)): approve, reject, expire, quorum,
auto-approval, policy denial, dry run, cooldown, a crash between approval and execution, a worker
killed right after the side effect, a worker retry, and hostile input: a target such as
``57; DROP TABLE Orders``, a log line claiming approval, an approval for an expired proposal, a
forged role, an approval replayed from another thread. Together: no executor runs without a
recorded approval from someone other than the requester, and none runs twice.

create_ticket runs the real ServiceNow client against the ServiceNow stand-in over HTTP (no
ServiceNow can run here; tests/standins/ticket_standins.py checks requests as the Table API does);
kill_session runs the real SQL executor, which refuses before touching any server in these replayed
worlds (tests/live/test_remediation_live.py kills real sessions on PostgreSQL and MariaDB).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command
from pydantic import SecretStr

from agents.llm import ModelHandle
from evals.loader import load_scenario
from graphs.audit import AuditLog
from graphs.context import Context
from graphs.copilot import build_graph
from graphs.policy import Policy, Rule
from tests.conftest import EXAMPLES, OWN_SCENARIOS, ROOT
from tests.remediation_support import Clock, Counting, KnowledgeList, action_runtime, scenario_input
from tests.standins.ticket_standins import ServiceNowWriteStandIn
from tools.actions.config import TicketsConfig
from tools.actions.sql import SqlKillSession
from tools.actions.tickets import ServiceNowTickets, WorkNotes
from tools.estate import ServiceNowConfig
from tools.replay import replay_sources

DISK = EXAMPLES / "disk-forecast-01.yaml"  # alert DiskSpaceLow: proposes create_ticket on db-host-02
BLOCKING = EXAMPLES / "mssql-blocking-01.yaml"  # proposes kill_session sql-prod-01 session 57


def ticket_policy(**rule: Any) -> Policy:
    return Policy(
        roles={"dba": ["alice", "bob"]},
        rules=[
            Rule(action="create_ticket", risk="low", dry_run=False, **rule),
            Rule(action="kill_session", dry_run=False),
        ],
    )


@pytest.fixture
def snow() -> Iterator[ServiceNowWriteStandIn]:
    with ServiceNowWriteStandIn(cis={"db-host-02"}) as s:
        yield s  # type: ignore[misc]


class Harness:
    """One investigation of a scenario with its own checkpointer, store, clock and executors."""

    def __init__(
        self,
        tmp_path: Path,
        scenario: Path,
        policy: Policy,
        snow: ServiceNowWriteStandIn | None,
        knowledge_factory: Any,
    ) -> None:
        self.tmp, self.scenario = tmp_path, load_scenario(scenario)
        self.clock = Clock()
        self.snow = snow
        self.tickets = None
        executors: dict[str, Any] = {"kill_session": Counting(SqlKillSession([]))}
        notes = None
        if snow is not None:
            cfg = ServiceNowConfig(url=snow.url, username="opscopilot", password=SecretStr("s3cret"))
            self.tickets = Counting(ServiceNowTickets(cfg, TicketsConfig()))
            executors["create_ticket"] = self.tickets
            notes = WorkNotes(servicenow=self.tickets.inner)
        self.kills = executors["kill_session"]
        self.knowledge = KnowledgeList()
        self.store = tmp_path / "store.sqlite"
        self.rt = action_runtime(
            self.store, policy, executors, self.clock, notes=notes, knowledge=self.knowledge
        )
        self.sources = replay_sources(self.scenario.world, knowledge_factory)
        self.checkpoints = tmp_path / "checkpoints.sqlite"
        self.conn = sqlite3.connect(self.checkpoints, check_same_thread=False)
        self.graph = build_graph(SqliteSaver(self.conn))

    def context(self) -> Context:
        return Context(
            sources=self.sources, model=ModelHandle.unavailable(), semantic_routing=False, actions=self.rt
        )

    def config(self, thread: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread}}

    def start(self, thread: str = "t1", requester: str = "carol") -> dict[str, Any]:
        self.graph.invoke(
            scenario_input(self.scenario, requester), self.config(thread), context=self.context()
        )
        return self.values(thread)

    def decide(self, thread: str = "t1", **decision: Any) -> dict[str, Any]:
        payload = {"decision": "approve", "approver": "alice", **decision}
        self.graph.invoke(Command(resume=payload), self.config(thread), context=self.context())
        return self.values(thread)

    def values(self, thread: str = "t1") -> dict[str, Any]:
        return dict(self.graph.get_state(self.config(thread)).values)

    def waiting(self, thread: str = "t1") -> bool:
        return bool(self.graph.get_state(self.config(thread)).interrupts)

    def audit(self, thread: str | None = None) -> list[tuple[str, str]]:
        return [(e.kind, e.actor) for e in AuditLog.open(self.store).entries(thread)]

    def posts(self) -> int:
        assert self.snow is not None
        return len([r for r in self.snow.seen if r.method == "POST"])


@pytest.fixture
def harness(tmp_path: Path, snow: ServiceNowWriteStandIn, knowledge_factory: Any) -> Harness:
    return Harness(tmp_path, DISK, ticket_policy(), snow, knowledge_factory)


def state_of(values: dict[str, Any], i: int = 0) -> str:
    return str(values["remediations"][i]["state"])


# --- the ordinary paths --------------------------------------------------------------------------------


def test_an_approval_by_someone_else_runs_the_action_once_verifies_and_writes_back(harness: Harness) -> None:
    values = harness.start()
    assert harness.waiting() and state_of(values) == "pending" and harness.posts() == 0
    proposal = values["proposals"][0]
    assert proposal["action"] == "create_ticket" and proposal["policy"]["approvals_required"] == 1
    values = harness.decide(approver="alice", comment="file it")
    assert not harness.waiting() and values["status"] == "done"
    assert state_of(values) == "verified" and harness.posts() == 1
    record = values["remediations"][0]
    assert record["result"]["external_id"] == "INC0020001" and record["approvals"][0]["approver"] == "alice"
    assert "the finding is still present" in record["verification"]["summary"]  # a ticket does not fix a disk
    assert harness.snow and harness.snow.journal["inc00001"][0].startswith(
        "OpsCopilot create_ticket"
    )  # work note
    assert [i.services for i in harness.knowledge.incidents] == [["db-host-02"]]
    kinds = [k for k, _ in harness.audit("t1")]
    assert kinds == [
        "proposed",
        "pending",
        "decision",
        "approved",
        "executing",
        "executed",
        "verified",
        "noted",
        "offered_to_knowledge",
    ], kinds
    assert AuditLog.open(harness.store).verify()[1] is None
    assert "verified" in values["approval"]["outcome"]


def test_a_rejection_runs_nothing(harness: Harness) -> None:
    harness.start()
    values = harness.decide(decision="reject", approver="alice", comment="not now")
    assert values["status"] == "rejected" and state_of(values) == "rejected" and harness.posts() == 0
    assert ("rejected", "alice") in harness.audit()


def test_an_approval_after_expiry_is_refused_and_audited(harness: Harness) -> None:
    harness.start()
    harness.clock.advance(hours=2)  # the rule's expires_after is 1 hour
    values = harness.decide(approver="alice")
    assert values["status"] == "expired" and state_of(values) == "expired" and harness.posts() == 0
    refused = [e for e in AuditLog.open(harness.store).entries() if e.kind == "decision_refused"]
    assert "approval for an expired proposal" in refused[0].details["reason"]
    assert ("expired", "opscopilot") in harness.audit()


def test_self_approval_a_forged_role_and_an_unknown_requester_run_nothing(
    tmp_path: Path, snow: ServiceNowWriteStandIn, knowledge_factory: Any
) -> None:
    h = Harness(tmp_path, DISK, ticket_policy(approver_roles=["dba"]), snow, knowledge_factory)
    h.start(requester="alice")
    h.decide(approver="alice", role="dba")  # the requester herself
    h.decide(approver="mallory", role="dba")  # claims a role the policy does not give her
    values = h.decide(approver="carol")  # a real person, but not a dba
    assert h.waiting() and state_of(values) == "pending" and h.posts() == 0
    reasons = [e.details["reason"] for e in AuditLog.open(h.store).entries() if e.kind == "decision_refused"]
    assert "asked for this investigation" in reasons[0] and "forged role" in reasons[1]
    assert "holds none of the roles" in reasons[2]
    values = h.decide(approver="bob", role="dba")
    assert state_of(values) == "verified" and h.posts() == 1

    h.start(thread="t-anon", requester="")  # nobody recorded as the requester
    values = h.decide(thread="t-anon", approver="bob")
    assert h.waiting("t-anon") and h.posts() == 1
    assert "requester of this investigation is not recorded" in values["approval"]["refused"][0]


def test_two_approvals_from_different_people_are_needed_when_the_policy_says_so(
    tmp_path: Path, snow: ServiceNowWriteStandIn, knowledge_factory: Any
) -> None:
    h = Harness(tmp_path, DISK, ticket_policy(approvals=2), snow, knowledge_factory)
    h.start()
    values = h.decide(approver="alice")
    assert h.waiting() and values["status"] == "awaiting_approval" and h.posts() == 0
    assert "1 of 2 approval(s)" in values["approval"]["outcome"]
    h.decide(approver="ALICE ")  # the same person again does not count twice
    assert h.waiting() and h.posts() == 0
    values = h.decide(approver="bob")
    assert state_of(values) == "verified" and h.posts() == 1
    assert [a["approver"] for a in values["remediations"][0]["approvals"]] == ["alice", "bob"]


def test_auto_approval_only_by_an_explicit_low_risk_rule_and_recorded_as_such(
    tmp_path: Path, snow: ServiceNowWriteStandIn, knowledge_factory: Any
) -> None:
    h = Harness(tmp_path, DISK, ticket_policy(auto_approve=True), snow, knowledge_factory)
    values = h.start()
    assert not h.waiting() and state_of(values) == "verified" and h.posts() == 1
    approved = next(e for e in AuditLog.open(h.store).entries() if e.kind == "approved")
    assert approved.actor == "policy" and "auto-approved by rule 0 (risk low)" in approved.details["note"]
    assert values["remediations"][0]["auto_approved"] is True
    with pytest.raises(ValueError, match="only for risk low"):
        Rule(action="kill_session", risk="high", auto_approve=True)


def test_what_no_rule_allows_is_denied_and_never_reaches_the_gate(
    tmp_path: Path, snow: ServiceNowWriteStandIn, knowledge_factory: Any
) -> None:
    h = Harness(tmp_path, DISK, Policy(rules=[Rule(action="kill_session")]), snow, knowledge_factory)
    values = h.start()
    assert not h.waiting() and state_of(values) == "denied" and h.posts() == 0
    assert h.audit() == [("proposed", "opscopilot"), ("denied", "policy")]


def test_a_dry_run_checks_and_sends_nothing(
    tmp_path: Path, snow: ServiceNowWriteStandIn, knowledge_factory: Any
) -> None:
    h = Harness(
        tmp_path, DISK, Policy(rules=[Rule(action="create_ticket", risk="low")]), snow, knowledge_factory
    )
    h.start()
    values = h.decide(approver="alice")
    assert state_of(values) == "dry_run" and h.posts() == 0 and len(h.tickets.executed) == 1  # type: ignore[union-attr]
    assert "dry run: would open a ServiceNow incident" in values["remediations"][0]["result"]["detail"]
    assert "nothing was run" in values["approval"]["outcome"]


def test_a_second_run_on_the_same_entity_within_the_cooldown_is_refused(harness: Harness) -> None:
    harness.start("t1")
    harness.decide("t1")
    harness.start("t2", requester="dave")
    values = harness.decide("t2", approver="alice")
    assert state_of(values) == "refused" and "cooldown" in values["remediations"][0]["result"]["detail"]
    assert harness.posts() == 1


# --- crashes, resumes and retries ----------------------------------------------------------------------


def test_resume_after_a_crash_between_approval_and_execution_runs_it_once(
    tmp_path: Path, snow: ServiceNowWriteStandIn, knowledge_factory: Any
) -> None:
    h = Harness(tmp_path, DISK, ticket_policy(), snow, knowledge_factory)
    h.start()
    # the process stops right after the approval is checkpointed, before execute_actions starts
    h.graph.invoke(
        Command(resume={"decision": "approve", "approver": "alice"}),
        h.config("t1"),
        context=h.context(),
        interrupt_after=["check_approval"],
    )
    assert h.graph.get_state(h.config("t1")).next == ("execute_actions",) and h.posts() == 0
    fresh = Harness(tmp_path, DISK, ticket_policy(), snow, knowledge_factory)  # a new process: same files
    fresh.graph.invoke(None, fresh.config("t1"), context=fresh.context())
    values = fresh.values()
    assert state_of(values) == "verified" and h.posts() == 1


def test_a_retried_worker_replays_the_recorded_result_instead_of_running_again(harness: Harness) -> None:
    harness.start()
    harness.decide(approver="alice")
    assert harness.posts() == 1
    before = next(
        s for s in harness.graph.get_state_history(harness.config("t1")) if s.next == ("execute_actions",)
    )
    harness.graph.invoke(
        None, before.config, context=harness.context()
    )  # execute_actions again, from the top
    values = harness.values()
    assert harness.posts() == 1 and len(harness.tickets.executed) == 1  # type: ignore[union-attr]
    assert values["remediations"][0]["result"]["replayed"] is True
    assert "already ran under key" in values["remediations"][0]["history"][-2]["note"]


def test_the_same_proposal_approved_twice_executes_once(harness: Harness) -> None:
    harness.start()
    pending = harness.graph.get_state(harness.config("t1"))
    harness.decide(approver="alice")
    # a second approval once it ran: nothing waits for one, so the graph does not run at all
    harness.decide(approver="bob")
    # the first approval delivered again from the paused checkpoint (a queue that redelivers a job):
    # check_approval, execute_actions and verify_outcomes run again from the top
    again = harness.graph.invoke(
        Command(resume={"decision": "approve", "approver": "alice"}),
        pending.config,
        context=harness.context(),
    )
    assert harness.posts() == 1 and len(harness.tickets.executed) == 1  # type: ignore[union-attr]
    assert again["remediations"][0]["result"]["replayed"] is True
    kinds = [e.kind for e in AuditLog.open(harness.store).entries()]
    assert kinds.count("executed") == 1 and kinds.count("replayed") == 1 and kinds.count("executing") == 1


def test_a_worker_killed_right_after_the_side_effect_is_reconciled_not_repeated(
    tmp_path: Path, snow: ServiceNowWriteStandIn, knowledge_factory: Any
) -> None:
    h = Harness(tmp_path, DISK, ticket_policy(), snow, knowledge_factory)
    h.start()
    decision = json.dumps({"decision": "approve", "approver": "alice"})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.remediation_worker",
            str(h.checkpoints),
            str(h.store),
            "t1",
            snow.url,
            str(DISK),
            decision,
            ticket_policy().model_dump_json(),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 17, proc.stderr  # died after ServiceNow created the incident
    assert h.posts() == 1 and len(snow.records["incident"]) == 1
    fresh = Harness(tmp_path, DISK, ticket_policy(), snow, knowledge_factory)  # the retry
    fresh.graph.invoke(
        Command(resume={"decision": "approve", "approver": "alice"}),
        fresh.config("t1"),
        context=fresh.context(),
    )
    values = fresh.values()
    result = values["remediations"][0]["result"]
    assert h.posts() == 1 and len(snow.records["incident"]) == 1  # not created twice
    assert result["reconciled"] is True and result["external_id"] == "INC0020001"
    assert len(fresh.tickets.reconciled) == 1 and fresh.tickets.executed == []  # type: ignore[union-attr]


# --- hostile input ------------------------------------------------------------------------------------


def test_a_target_such_as_57_drop_table_orders_is_refused_and_audited(
    tmp_path: Path, knowledge_factory: Any
) -> None:
    h = Harness(tmp_path, BLOCKING, ticket_policy(), None, knowledge_factory)
    values = h.start()
    assert values["proposals"][0]["target_ref"]["id"] == "57"
    # someone edits the stored proposal: the session id becomes SQL text
    forged = [
        dict(
            values["proposals"][0],
            target_ref={**values["proposals"][0]["target_ref"], "id": "57; DROP TABLE Orders"},
        )
    ]
    h.graph.update_state(h.config("t1"), {"proposals": forged}, as_node="synthesize")
    h.graph.invoke(None, h.config("t1"), context=h.context())  # screened again: a new fingerprint
    values = h.decide(approver="alice")
    record = values["remediations"][0]
    assert record["state"] == "refused" and "is not a whole number" in record["result"]["detail"]
    assert '"57; DROP TABLE Orders"' in record["target"]  # rendered escaped, quoted
    assert ("refused", "opscopilot") in h.audit()
    assert (
        len(h.kills.executed) == 1 and h.kills.executed[0].proposal.target_ref.id == "57; DROP TABLE Orders"
    )  # type: ignore[union-attr]


def test_an_approval_claimed_in_a_log_line_approves_nothing(tmp_path: Path, knowledge_factory: Any) -> None:
    h = Harness(
        tmp_path, OWN_SCENARIOS / "injection-approval-request.yaml", ticket_policy(), None, knowledge_factory
    )
    values = h.start()
    assert any(
        "APPROVED by dba-lead" in json.dumps(e["rows"]) for e in values["evidence"]
    )  # it was read, as data
    assert h.waiting() and state_of(values) == "pending" and values["remediations"][0]["approvals"] == []
    assert h.kills.executed == [] and h.audit() == [("proposed", "opscopilot"), ("pending", "policy")]  # type: ignore[union-attr]
    values = h.decide(approver="dba-lead", role="dba")  # and the named "approver" has no such role
    assert "forged role" in values["approval"]["refused"][0] and h.kills.executed == []  # type: ignore[union-attr]


def test_an_approval_replayed_from_another_thread_is_refused(harness: Harness) -> None:
    harness.start("t-a")
    harness.start("t-b", requester="dave")
    request_a = harness.values("t-a")["proposals"][0]["policy"]["request_id"]
    decision_for_a = {"decision": "approve", "approver": "alice", "thread_id": "t-a", "request_id": request_a}
    values = harness.decide("t-b", **decision_for_a)
    assert harness.waiting("t-b") and harness.posts() == 0
    assert "replayed from another thread" in values["approval"]["refused"][0]
    values = harness.decide("t-b", approver="alice", request_id=request_a)  # only the request id
    assert harness.waiting("t-b") and "another approval request" in values["approval"]["refused"][0]
    assert [k for k, _ in harness.audit("t-b")].count("decision_refused") == 2


def test_without_an_action_runtime_an_approval_is_recorded_and_nothing_runs(knowledge_factory: Any) -> None:
    scenario = load_scenario(DISK)
    graph = build_graph(InMemorySaver())
    ctx = Context(
        sources=replay_sources(scenario.world, knowledge_factory),
        model=ModelHandle.unavailable(),
        semantic_routing=False,
    )
    config = {"configurable": {"thread_id": "plain"}}
    graph.invoke(scenario_input(scenario), config, context=ctx)
    graph.invoke(Command(resume={"decision": "approve", "approver": "alice"}), config, context=ctx)
    values = graph.get_state(config).values
    assert (
        values["status"] == "approved" and values["executed_actions"] == [] and "remediations" not in values
    )


# --- the audit CLI on this log ------------------------------------------------------------------------


def test_audit_verify_on_the_log_an_investigation_wrote_and_on_a_tampered_copy(
    harness: Harness, tmp_path: Path
) -> None:
    harness.start()
    harness.decide(approver="carol")  # refused: carol asked
    harness.decide(approver="alice")

    def verify(store: Path) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "HF_HUB_OFFLINE": "1",
            "OPSCOPILOT_DATA_DIR": str(tmp_path / "var"),
        }
        return subprocess.run(
            [sys.executable, "-m", "server.cli", "audit", "verify", "--store", str(store)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = verify(harness.store)
    assert ok.returncode == 0 and "OK, 11 entries" in ok.stdout, ok.stdout + ok.stderr
    copy = tmp_path / "copy.sqlite"
    with sqlite3.connect(harness.store) as live, sqlite3.connect(copy) as backup:
        live.backup(backup)  # a consistent copy of a store in use (WAL)
    with sqlite3.connect(copy) as conn:  # make the refused self-approval look like a normal decision
        conn.execute("DELETE FROM audit_log WHERE kind = 'decision_refused'")
    bad = verify(copy)
    assert bad.returncode == 1 and "TAMPERED at entry 4: entry 4 is missing" in bad.stdout, bad.stdout
