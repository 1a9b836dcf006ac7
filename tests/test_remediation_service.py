"""The service path of a remediation, over HTTP: a decision recorded by the approval API resumes the
paused graph with the full decision, the graph checks it, runs the approved action once, and the
outcome (execution result, verification, audit trail) comes back on the approval. Refusals (the
requester approving, an expired proposal, a second approval) are audited; expiry goes through the
graph; `audit verify` passes on the log these requests wrote and fails on a tampered copy.

The investigations replay the demo scenario, so the executor is the replay rehearsal
(tools/actions/replay.py), wrapped here to count its calls: a recording is never acted on, and every
action is a dry run by construction. tests/live/test_remediation_service_live.py does the same
against a real PostgreSQL, where the session really ends.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from server.investigations import Investigations
from tests.api_helpers import api, auth, run_input, sse, wait_for
from tests.conftest import ROOT
from tests.remediation_support import Counting

QUESTION = "Why is checkout timing out on sql-prod-01?"


def counting_rehearsal(service: Investigations, ref: str) -> Counting:
    """Every action of replayed investigations goes through one counting wrapper of the rehearsal."""
    rt = service.actions(ref)
    counting = Counting(rt.executors["kill_session"])
    rt.executors = dict.fromkeys(rt.executors, counting)
    return counting


def pending_approval(client: Any, token: str) -> dict[str, Any]:
    queued = client.post("/api/v1/investigations", json={"question": QUESTION}, headers=auth(token))
    assert queued.status_code == 202, queued.text
    inv = wait_for(client, queued.json()["investigation_id"], auth(token))
    assert inv["status"] == "awaiting_approval", inv
    assert inv["approval"] and inv["approval"]["status"] == "pending"
    return inv["approval"]  # type: ignore[no-any-return]


def audit_kinds(service: Investigations, inv_id: str) -> list[tuple[str, str]]:
    return [(e.kind, e.actor) for e in service.actions().audit.entries(inv_id)]


def test_a_second_user_approves_over_http_the_action_runs_once_and_get_returns_the_outcome(
    tmp_path: Path,
) -> None:
    with api(tmp_path) as (client, ctx):
        carol = ctx.auth.create("carol", "approver")  # asks; may approve, but not her own request
        erin = ctx.auth.create("erin", "approver")
        counting = counting_rehearsal(ctx.service, ctx.source_ref)
        approval = pending_approval(client, carol)
        proposal = approval["proposals"][0]
        assert proposal["action"] == "kill_session" and proposal["target"] == "sql-prod-01 session 57"
        assert proposal["risk"] == "high" and "1 approval(s) needed" in proposal["risk_reason"]
        assert proposal["state"] == "pending" and proposal["dry_run"] is True
        url = f"/api/v1/approvals/{approval['id']}/decision"

        own = client.post(url, json={"decision": "approve"}, headers=auth(carol))
        assert own.status_code == 403 and "may not approve" in own.json()["detail"]
        inv_id = approval["investigation_id"]
        assert ("decision_refused", "carol") in audit_kinds(ctx.service, inv_id)
        assert counting.executed == []

        ok = client.post(
            url,
            json={
                "decision": "approve",
                "comment": "checkout is down",
                "fingerprint": approval["fingerprint"],
            },
            headers=auth(erin),
        )
        assert ok.status_code == 200, ok.text
        done = ok.json()
        assert done["approval"]["status"] == "approved" and done["approval"]["decided_by"] == "erin"
        ran = done["approval"]["proposals"][0]
        assert ran["state"] == "dry_run" and ran["result"]["outcome"] == "dry_run"
        assert "nothing real was touched" in ran["result"]["detail"] and ran["approvals"] == ["erin"]
        assert "kill_session sql-prod-01 session 57: dry_run" in done["outcome"]
        assert len(counting.executed) == 1 and counting.executed[0].dry_run

        again = client.post(url, json={"decision": "approve"}, headers=auth(erin))
        assert again.status_code == 409 and len(counting.executed) == 1
        fetched = client.get(f"/api/v1/approvals/{approval['id']}", headers=auth(carol)).json()
        assert fetched["outcome"] == done["outcome"] and fetched["proposals"][0]["result"] == ran["result"]
        inv = client.get(f"/api/v1/investigations/{inv_id}", headers=auth(carol)).json()
        assert inv["status"] == "approved" and inv["approval"]["outcome"] == done["outcome"]
        runs = ctx.service.actions().ledger.runs(inv_id)
        assert [(r.action, r.outcome, r.dry_run) for r in runs] == [("kill_session", "dry_run", True)]
        kinds = [k for k, _ in audit_kinds(ctx.service, inv_id)]
        assert kinds == [
            "proposed", "pending", "decision_refused", "decision", "approved", "executing", "dry_run",
            "decision_refused",
        ]  # fmt: skip


def test_an_approval_after_expiry_is_refused_audited_and_recorded_as_expired_by_the_graph(
    tmp_path: Path,
) -> None:
    with api(tmp_path, approval_ttl_minutes=0.005) as (client, ctx):  # 0.3 s
        carol = ctx.auth.create("carol", "operator")
        erin = ctx.auth.create("erin", "approver")
        counting = counting_rehearsal(ctx.service, ctx.source_ref)
        approval = pending_approval(client, carol)
        time.sleep(0.5)
        late = client.post(
            f"/api/v1/approvals/{approval['id']}/decision", json={"decision": "approve"}, headers=auth(erin)
        )
        assert late.status_code == 409 and "expired proposal" in late.json()["detail"]
        doc = client.get(f"/api/v1/approvals/{approval['id']}", headers=auth(erin)).json()
        assert doc["status"] == "expired" and doc["proposals"][0]["state"] == "expired"
        inv_id = approval["investigation_id"]
        kinds = audit_kinds(ctx.service, inv_id)
        assert ("expired", "opscopilot") in kinds and ("decision_refused", "erin") in kinds
        snapshot = ctx.service.graph.get_state({"configurable": {"thread_id": inv_id}})
        assert not snapshot.interrupts and snapshot.values["status"] == "expired"
        assert counting.executed == []


def test_a_decision_over_the_chat_stream_carries_the_action_events(tmp_path: Path) -> None:
    """AG-UI: the resumed run's CUSTOM events announce approved, executing and executed."""
    with api(tmp_path) as (client, ctx):
        carol = ctx.auth.create("carol", "operator")
        erin = ctx.auth.create("erin", "approver")
        first = client.post("/api/v1/chat", json=run_input("t1", "r1", QUESTION), headers=auth(carol))
        interrupt = sse(first.text)[-1]["outcome"]["interrupts"][0]
        resume = [{"interruptId": interrupt["id"], "status": "resolved", "payload": {"decision": "approve"}}]
        second = client.post("/api/v1/chat", json=run_input("t1", "r2", resume=resume), headers=auth(erin))
        names = [e.get("name") for e in sse(second.text) if e.get("type") == "CUSTOM"]
        assert names.index("opscopilot.action_approved") < names.index("opscopilot.action_executing")
        assert names.index("opscopilot.action_executing") < names.index("opscopilot.action_executed")
        executed = next(e for e in sse(second.text) if e.get("name") == "opscopilot.action_executed")
        assert (
            executed["value"]["outcome"] == "dry_run"
            and executed["value"]["target"] == "sql-prod-01 session 57"
        )


def test_audit_verify_passes_after_an_http_approval_and_fails_on_a_tampered_copy(tmp_path: Path) -> None:
    with api(tmp_path) as (client, ctx):
        carol = ctx.auth.create("carol", "approver")
        erin = ctx.auth.create("erin", "approver")
        approval = pending_approval(client, carol)
        url = f"/api/v1/approvals/{approval['id']}/decision"
        assert client.post(url, json={"decision": "approve"}, headers=auth(carol)).status_code == 403
        assert client.post(url, json={"decision": "approve"}, headers=auth(erin)).status_code == 200

    def audit(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
               "OPSCOPILOT_DATA_DIR": str(tmp_path / "var")}  # fmt: skip
        return subprocess.run([sys.executable, "-m", "server.cli", "audit", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    ok = audit("verify")
    assert ok.returncode == 0 and ": OK, 7 entries" in ok.stdout, ok.stdout + ok.stderr
    copy = tmp_path / "copy.sqlite"
    with sqlite3.connect(tmp_path / "var" / "opscopilot.sqlite") as live, sqlite3.connect(copy) as backup:
        live.backup(backup)
    with sqlite3.connect(copy) as conn:  # hide that the requester tried to approve her own proposal
        conn.execute("DELETE FROM audit_log WHERE kind = 'decision_refused'")
    bad = audit("verify", "--store", str(copy))
    assert bad.returncode == 1 and "TAMPERED at entry 3: entry 3 is missing" in bad.stdout, bad.stdout


def test_a_decision_whose_process_died_before_the_outcome_is_carried_on_once(tmp_path: Path) -> None:
    """The decision was recorded, then the process died (here: it never resumed the graph, and its
    owner is a process that has exited). Housekeeping carries the decision on: the action runs once,
    the outcome is stored; a second sweep finds nothing to do."""
    from server.principals import Principal

    with api(tmp_path) as (client, ctx):
        carol = ctx.auth.create("carol", "operator")
        counting = counting_rehearsal(ctx.service, ctx.source_ref)
        approval = pending_approval(client, carol)
        decisions = ctx.service.decisions
        erin = Principal(name="erin", role="approver", via="api")
        decisions.record(decisions.decidable(approval["id"], erin, None), "approve", erin, "go")
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
        owner = f"{__import__('socket').gethostname()}:{gone}"
        ctx.store.update_investigation(approval["investigation_id"], owner=owner)
        assert ctx.store.get_approval(approval["id"])["outcome"] is None
        assert counting.executed == []

        assert decisions.finish_interrupted() == 1
        doc = client.get(f"/api/v1/approvals/{approval['id']}", headers=auth(carol)).json()
        assert doc["status"] == "approved" and doc["proposals"][0]["state"] == "dry_run", doc
        assert len(counting.executed) == 1
        assert decisions.finish_interrupted() == 0 and len(counting.executed) == 1
        inv = client.get(f"/api/v1/investigations/{approval['investigation_id']}", headers=auth(carol)).json()
        assert inv["status"] == "approved"


QUORUM = """\
version: 1
roles:
  dba: [dave]
rules:
  - action: kill_session
    risk: high
    approvals: 2
    approver_roles: [dba, approver]
"""


def test_a_quorum_of_two_over_http_roles_from_tokens_and_the_policy_and_the_graph_as_authority(
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from server.app import build_context, create_app
    from server.settings import ServiceConfig, Settings
    from tests.api_helpers import DEMO
    from tools.actions.config import ActionsConfig

    policy = tmp_path / "policy.yaml"
    policy.write_text(QUORUM)
    settings = Settings(data_dir=tmp_path / "var", model_spec="none", service=ServiceConfig(workers=1),
                        actions=ActionsConfig(policy_file=policy))  # fmt: skip
    ctx = build_context(settings, scenario=DEMO)
    with TestClient(create_app(ctx)) as client:
        carol = ctx.auth.create("carol", "operator")
        erin, dave, gus = (ctx.auth.create(n, "approver") for n in ("erin", "dave", "gus"))
        frank = ctx.auth.create("frank", "viewer")
        counting = counting_rehearsal(ctx.service, ctx.source_ref)
        approval = pending_approval(client, carol)
        assert approval["proposals"][0]["approvals_required"] == 2
        url = f"/api/v1/approvals/{approval['id']}/decision"

        first = client.post(url, json={"decision": "approve"}, headers=auth(erin))
        assert first.status_code == 200, first.text
        assert (
            first.json()["approval"]["status"] == "pending"
            and "1 of 2 approval(s)" in first.json()["outcome"]
        )
        assert first.json()["approval"]["proposals"][0]["approvals"] == ["erin"] and counting.executed == []
        twice = client.post(url, json={"decision": "approve"}, headers=auth(erin))  # the graph refuses
        assert twice.status_code == 403 and "approved this proposal already" in twice.json()["detail"]
        viewer = client.post(url, json={"decision": "approve"}, headers=auth(frank))
        assert viewer.status_code == 403 and "deciding needs approver" in viewer.json()["detail"]
        forged = client.post(url, json={"decision": "approve", "role": "dba"}, headers=auth(gus))
        assert forged.status_code == 403 and "forged role" in forged.json()["detail"]
        assert counting.executed == []

        second = client.post(url, json={"decision": "approve", "role": "dba"}, headers=auth(dave))
        assert second.status_code == 200, second.text
        done = second.json()["approval"]
        assert done["status"] == "approved" and done["proposals"][0]["approvals"] == ["erin", "dave"]
        assert done["proposals"][0]["state"] == "dry_run" and len(counting.executed) == 1
        refused = [
            (e.actor, e.details.get("reason", "")[:40])
            for e in ctx.service.actions().audit.entries(approval["investigation_id"])
            if e.kind == "decision_refused"
        ]
        assert [a for a, _ in refused] == ["erin", "frank", "gus"], refused


def test_an_auto_approved_proposal_runs_without_a_pause_and_its_approval_says_policy(tmp_path: Path) -> None:
    """A rule that approves by itself (low risk, explicitly) runs the action in the investigation's own
    run; the approval row records it as approved by `policy`, with what ran."""
    from fastapi.testclient import TestClient

    from server.app import build_context, create_app
    from server.settings import ServiceConfig, Settings
    from tests.api_helpers import DEMO
    from tools.actions.config import ActionsConfig

    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrules:\n  - action: kill_session\n    risk: low\n    auto_approve: true\n")
    settings = Settings(data_dir=tmp_path / "var", model_spec="none", service=ServiceConfig(workers=1),
                        actions=ActionsConfig(policy_file=policy))  # fmt: skip
    ctx = build_context(settings, scenario=DEMO)
    with TestClient(create_app(ctx)) as client:
        carol = ctx.auth.create("carol", "operator")
        counting = counting_rehearsal(ctx.service, ctx.source_ref)
        queued = client.post("/api/v1/investigations", json={"question": QUESTION}, headers=auth(carol))
        inv = wait_for(client, queued.json()["investigation_id"], auth(carol))
        assert inv["status"] == "done", inv
        approval = inv["approval"]
        assert approval["status"] == "approved" and approval["decided_by"] == "policy"
        assert approval["proposals"][0]["state"] == "dry_run" and len(counting.executed) == 1
        assert client.get("/api/v1/approvals", headers=auth(carol)).json() == []  # nothing waits
