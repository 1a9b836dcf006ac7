"""The synthesizer: ordering, proposals only from findings, and the grounding of the model's words."""

from __future__ import annotations

from graphs.grounding import ground
from graphs.synthesize import build_report, render_answer
from tools.base import Evidence, Finding, ProposedAction, Severity


def _ev(i: str) -> Evidence:
    return Evidence(id=i, specialist="database", tool=i.split("@")[0], entity="db1", summary=f"rows of {i}")


def _report(findings: list[Finding]):  # type: ignore[no-untyped-def]
    return build_report("q", "none", ["db1"], ["database"], [_ev("b@db1"), _ev("a@db1")], findings, [])


HEALTHY = [
    Finding(
        specialist="database",
        entity="db1",
        kind="no_blocking",
        severity=Severity.INFO,
        title="No blocking on db1",
        evidence=["b@db1"],
    )
]
BLOCKED = [
    Finding(
        specialist="database",
        entity="db1",
        kind="blocking_chain",
        severity=Severity.CRITICAL,
        title="Blocking chain on db1: head blocker session 9",
        evidence=["b@db1"],
        remediation=ProposedAction(
            action="kill_session", target="db1 session 9", reason="r", evidence=["b@db1"]
        ),
    ),
    Finding(
        specialist="database",
        entity="db1",
        kind="wait_profile",
        severity=Severity.WARNING,
        title="Waits dominated by locks",
        evidence=["a@db1"],
        remediation=ProposedAction(
            action="kill_session", target="db1 session 9", reason="dup", evidence=["a@db1"]
        ),
    ),
]


def test_findings_most_severe_first_and_proposals_deduplicated() -> None:
    report = _report(list(reversed(BLOCKED)))
    assert [f.kind for f in report.findings] == ["blocking_chain", "wait_profile"]
    assert [(p.action, p.target) for p in report.proposals] == [("kill_session", "db1 session 9")]
    # evidence is numbered in a stable order (tool name), whatever order it arrived in
    assert [e["id"] for e in report.evidence] == ["a@db1", "b@db1"]
    assert report.findings[0].evidence_refs == ["E2"]
    assert "requires approval; not executed" in render_answer(report)


def test_guard_drops_unknown_refs_repeats_and_a_cut_off_sentence() -> None:
    report = _report(BLOCKED)
    text = "Session 9 blocks [E2] [E7]. Session 9 blocks [E2]. Kill session 9 after approval. It also"
    grounded = ground(text, report)
    assert grounded.text == "Session 9 blocks [E2]. Kill session 9 after approval."
    assert [why for _, why in grounded.dropped] == ["cut off mid-sentence", "repeats an earlier sentence"]


def test_guard_on_a_healthy_report_drops_invented_causes_and_destructive_advice() -> None:
    report = _report(HEALTHY)
    text = "db1 looks healthy [E2]. The most likely cause is a slow disk. Restart the service to be safe."
    grounded = ground(text, report)
    assert grounded.text == "db1 looks healthy [E2]."
    assert len(grounded.dropped) == 2
    assert report.headline.startswith("No issues found on db1")
    assert report.proposals == []


def test_no_all_clear_from_the_model_when_something_was_not_seen() -> None:
    report = _report(HEALTHY)
    report.coverage = ["Not checked on db1: deadlocks (no log source configured)."]
    text = "db1 looks healthy [E2]. Blocking was checked and none was found [E1]."
    grounded = ground(text, report)
    assert (
        "db1 looks healthy [E2].",
        "calls the system healthy while something asked about was not checked",
    ) in (grounded.dropped)
    assert "looks healthy" not in grounded.text
