"""The remediation policy file (validation with file, line, key and what is allowed) and the proposal
state machine: screening, and when an approval counts."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from graphs.policy import Policy, PolicyError, Rule, default_policy, load_policy
from graphs.proposals import ProposalRecord, apply_decision, screen
from tests.conftest import ROOT
from tools.base import ActionTarget, ProposedAction

NOW = datetime(2026, 7, 8, 10, 0, tzinfo=UTC)


def kill(session: str = "57", entity: str = "sql-prod-01") -> ProposedAction:
    return ProposedAction(
        action="kill_session",
        target=f"{entity} session {session}",
        reason="head blocker",
        evidence=[f"blocking_chains@{entity}"],
        target_ref=ActionTarget(entity=entity, kind="session", id=session),
    )


def ticket(entity: str = "db-host-02") -> ProposedAction:
    return ProposedAction(
        action="create_ticket",
        target=entity,
        reason="disk",
        evidence=[f"capacity_forecast@{entity}"],
        target_ref=ActionTarget(entity=entity, kind="ticket"),
    )


def test_the_shipped_policy_loads_and_keeps_everything_a_dry_run() -> None:
    policy = load_policy(ROOT / "config" / "policy.yaml")
    assert {r.action for r in policy.rules} == {
        "kill_session",
        "create_ticket",
        "page_oncall",
        "run_playbook",
        "restart_service",
        "scale_out",
    }
    assert all(r.dry_run for r in policy.rules) and not any(r.auto_approve for r in policy.rules)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - action: kill_session\n    risk: extreme\n",
            ["line 3", "rules[0].risk = 'extreme'", "low, medium, high"],
        ),
        (
            "rules:\n  - action: drop_database\n",
            ["line 2", "rules[0].action = 'drop_database'", "kill_session"],
        ),
        (
            "rules:\n  - action: kill_session\n    approvers: 2\n",
            ["line 3", "unknown key rules[0].approvers", "approvals"],
        ),
        ("rules:\n  - action: kill_session\n    auto_approve: true\n", ["line 2", "only for risk low"]),
        ("rules:\n  - action: page_oncall\n    cooldown: soon\n", ["line 3", "cooldown = 'soon'", "15m"]),
        ("max_actions: 0\n", ["line 1", "max_actions = 0", ">= 1"]),
        ("rules:\n  - action: kill_session\n    approver_roles: [dba]\n", ["roles not under `roles`", "dba"]),
        ("rules: [\n", ["line 2", "invalid YAML"]),
    ],
)
def test_a_bad_policy_names_the_file_line_key_value_and_what_is_allowed(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_a_bad_policy_stops_the_cli_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("rules:\n  - action: kill_session\n    dry_run: maybe\n")
    (tmp_path / "settings.yaml").write_text(f"actions:\n  policy_file: {tmp_path / 'policy.yaml'}\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "approvals",
            "list",
            "--config",
            str(tmp_path / "settings.yaml"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "line 3" in proc.stderr and "dry_run = 'maybe'" in proc.stderr and "Traceback" not in proc.stderr


def test_screening_denies_what_no_rule_allows_and_beyond_the_blast_radius_auto_approves_only_low_risk() -> (
    None
):
    policy = Policy(
        max_actions=5,
        rules=[
            Rule(action="kill_session", entities=["sql-prod-*"], max_targets=1),
            Rule(action="create_ticket", risk="low", auto_approve=True),
        ],
    )
    records = screen([kill("57"), kill("58"), kill("9", "pg-other"), ticket()], policy, None, NOW)
    assert [r.state for r in records] == ["pending", "denied", "denied", "approved"]
    assert "blast radius" in records[1].history[-1].note
    assert "no policy rule allows kill_session on pg-other" in records[2].history[-1].note
    assert records[3].auto_approved and "auto-approved by rule 1" in records[3].history[-1].note
    assert records[0].expires_at == (NOW + timedelta(hours=1)).isoformat()


def test_rules_limited_to_alerts_do_not_cover_a_question() -> None:
    policy = Policy(rules=[Rule(action="kill_session", alerts=["PgBlocking*"])])
    assert screen([kill()], policy, None, NOW)[0].state == "denied"
    assert screen([kill()], policy, "PgBlockingChain", NOW)[0].state == "pending"


def decide(records: list[ProposalRecord], policy: Policy, **decision: object) -> list[str]:
    base = {"decision": "approve", "approver": "bob"}
    refused = apply_decision(
        records,
        {**base, **decision},
        policy=policy,
        requester="alice",
        thread_id="t1",
        current_request="r1",
        now=NOW + timedelta(minutes=5),
    )
    return [r.reason for r in refused]


def test_an_approval_counts_only_from_someone_else_with_a_real_role_and_enough_people() -> None:
    policy = Policy(
        roles={"dba": ["bob", "carol"]},
        rules=[Rule(action="kill_session", approvals=2, approver_roles=["dba"])],
    )
    records = screen([kill()], policy, None, NOW)
    assert "asked for this investigation" in decide(records, policy, approver="alice")[0]  # the requester
    assert "forged role" in decide(records, policy, approver="dave", role="dba")[0]
    assert "holds none of the roles" in decide(records, policy, approver="dave")[0]
    assert decide(records, policy, approver="bob", role="dba") == [] and records[0].state == "pending"
    assert "approved this proposal already" in decide(records, policy, approver=" Bob ")[0]
    assert decide(records, policy, approver="carol") == [] and records[0].state == "approved"
    assert [a.approver for a in records[0].approvals] == ["bob", "carol"]


def test_decisions_for_another_thread_or_request_or_unknown_proposals_are_refused() -> None:
    policy = default_policy()
    records = screen([kill()], policy, None, NOW)
    assert "replayed from another thread" in decide(records, policy, thread_id="t-other")[0]
    assert "another approval request" in decide(records, policy, request_id="r-old")[0]
    assert "does not have" in decide(records, policy, fingerprints=["f" * 64])[0]
    assert records[0].state == "pending" and records[0].approvals == []


def test_an_unknown_requester_blocks_approval_and_an_expired_proposal_cannot_be_approved() -> None:
    policy = default_policy()
    records = screen([kill()], policy, None, NOW)
    refused = apply_decision(
        records,
        {"decision": "approve", "approver": "bob"},
        policy=policy,
        requester=None,
        thread_id="t1",
        current_request="r1",
        now=NOW,
    )
    assert "requester of this investigation is not recorded" in refused[0].reason
    late = apply_decision(
        records,
        {"decision": "approve", "approver": "bob"},
        policy=policy,
        requester="alice",
        thread_id="t1",
        current_request="r1",
        now=NOW + timedelta(hours=2),
    )
    assert records[0].state == "expired" and "approval for an expired proposal" in late[0].reason


def test_the_state_machine_refuses_a_transition_it_does_not_have() -> None:
    record = screen([kill()], default_policy(), None, NOW)[0]
    with pytest.raises(ValueError, match="no transition pending -> executed"):
        record.move("executed", NOW, "x")


def test_actions_settings_take_secrets_only_as_references_and_build_the_executors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.actions_wiring import Unavailable, build_executors
    from server.settings import SettingsError, load_settings

    monkeypatch.setenv("TEST_PD_KEY", "R0UT1NGKEY0123456789abcdef012345")
    good = tmp_path / "good.yaml"
    good.write_text(
        "actions:\n  pagerduty_events:\n    routing_key: {env: TEST_PD_KEY}\n"
        "  awx:\n    url: https://awx.example\n"  # no token: that executor refuses, the rest work
    )
    settings = load_settings(good)
    assert settings.actions.pagerduty_events.routing_key.get_secret_value().startswith("R0UT")  # type: ignore[union-attr]
    executors, notes = build_executors(settings)
    assert type(executors["page_oncall"]).__name__ == "PagerDutyPage"
    assert (
        isinstance(executors["run_playbook"], Unavailable)
        and "needs token" in executors["run_playbook"].reason
    )
    assert isinstance(executors["create_ticket"], Unavailable) and notes is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("actions:\n  pagerduty_events:\n    routing_key: R0UT1NGKEY0123456789abcdef012345\n")
    with pytest.raises(SettingsError, match="a secret is never written in the settings file") as err:
        load_settings(bad)
    assert "R0UT1NG" not in str(err.value)
