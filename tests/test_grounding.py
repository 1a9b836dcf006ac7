"""Grounding of the model's explanation: every sentence checked against the report before it is shown."""

from __future__ import annotations

from typing import Any

import pytest

from agents.llm import ModelHandle
from evals.loader import load_scenario
from evals.runner import RunOptions, investigate_scenario, run_scenario
from graphs.explain import digest
from graphs.grounding import ground
from graphs.sentences import split_sentences
from graphs.synthesize import Report, build_report
from tests.conftest import EXAMPLES
from tests.scripted import ScriptedChatModel
from tools.base import ActionTarget, Evidence, Finding, ProposedAction, Severity

NO_MODEL = ModelHandle.unavailable()


def _ev(tool: str, entity: str, summary: str) -> Evidence:
    return Evidence(id=f"{tool}@{entity}", specialist="database", tool=tool, entity=entity, summary=summary)


BLOCKING = Finding(
    specialist="database",
    entity="sql-prod-01",
    kind="blocking_chain",
    severity=Severity.CRITICAL,
    title="Blocking chain on sql-prod-01: head blocker session 57 blocks 3 sessions",
    detail="Head blocker session 57 is sleeping with 1 open transaction (open for 24 min). "
    "Blocked: session 88 blocked by 57, waiting for 61 s; session 91 blocked by 88.",
    evidence=["blocking_chains@sql-prod-01"],
    remediation=ProposedAction(
        action="kill_session",
        target="sql-prod-01 session 57",
        reason="head blocker",
        evidence=["blocking_chains@sql-prod-01"],
        target_ref=ActionTarget(entity="sql-prod-01", kind="session", id="57"),
    ),
)
REGRESSED = Finding(
    specialist="database",
    entity="sql-prod-01",
    kind="regressed_query",
    severity=Severity.WARNING,
    title="Regressed query on sql-prod-01: 13x slower than baseline",
    detail="query_hash 0x7A11C0FFEE000057: avg 50.1 ms now vs 3.9 ms baseline over 18220 executions",
    evidence=["top_queries@sql-prod-01"],
)
EVIDENCE = [
    _ev("blocking_chains", "sql-prod-01", "5 sessions on sql-prod-01: 3 blocked, head blocker(s) 57"),
    _ev("top_queries", "sql-prod-01", "1 top statement on sql-prod-01: 1 regressed"),
    _ev("blocking_chains", "sql-prod-02", "2 sessions on sql-prod-02: none blocked"),
]
NO_BLOCKING_02 = Finding(
    specialist="database",
    entity="sql-prod-02",
    kind="no_blocking",
    severity=Severity.INFO,
    title="No blocking on sql-prod-02",
    evidence=["blocking_chains@sql-prod-02"],
)


def _report(findings: list[Finding]) -> Report:
    return build_report("why is checkout slow?", "scripted", [], ["database"], EVIDENCE, findings, [])


def _why(text: str, report: Report) -> str | None:
    grounded = ground(text, report)
    return grounded.dropped[0][1] if grounded.dropped else None


@pytest.fixture
def report() -> Report:
    r = _report([BLOCKING, REGRESSED, NO_BLOCKING_02])
    # E1 blocking sql-prod-01, E2 top queries sql-prod-01, E3 blocking sql-prod-02
    assert [e["id"] for e in r.evidence] == [
        "blocking_chains@sql-prod-01",
        "top_queries@sql-prod-01",
        "blocking_chains@sql-prod-02",
    ]
    return r


@pytest.mark.parametrize(
    "sentence",
    [
        "Session 57 on sql-prod-01 is the head blocker and blocks 3 sessions [E1].",
        "The head blocker has held its transaction open for 24 min [E1].",
        "The regressed query is 13x slower than baseline, 50.1 ms against 3.9 ms [E2].",
        "Kill session 57 on sql-prod-01 once a human approves it [E1].",
        "Do not restart sql-prod-01; the blocker is one session [E1].",
        "No session on sql-prod-02 is blocked [E3].",
        "The head blocker's transaction has been growing for 24 min [E1].",
    ],
)
def test_supported_sentences_are_kept(sentence: str, report: Report) -> None:
    grounded = ground(sentence, report)
    assert grounded.kept == [sentence], grounded.dropped


@pytest.mark.parametrize(
    ("sentence", "why"),
    [
        ("The head blocker has waited for 99 s [E1].", "number 99 s"),
        ("The query is 50.1 s slower [E2].", "number 50.1 s"),
        ("sql-prod-09 is also blocked [E1].", "sql-prod-09 is not known"),
        ("Session 1234 blocks everything [E1].", "session 1234 is not in the findings"),
        ("Query 0xDEADBEEF0001 regressed [E2].", "query 0xDEADBEEF0001"),
        ("This matches INC-9999.", "incident INC-9999"),
        ("Session 57 blocks 3 sessions on sql-prod-01 [E3].", "[E3] is evidence about sql-prod-02"),
        ("The head blocker session 57 blocks 3 sessions [E2].", "[E2] is not evidence for this claim"),
        ("Everything looks healthy.", "healthy while a finding is critical"),
        ("Kill session 1 on sql-prod-01 immediately.", "session 1 is not in the findings"),
        ("Kill session 88 on sql-prod-01 to clear it [E1].", "another target than the proposal"),
        ("Kill session 57 on sql-prod-02 [E1].", "[E1] is evidence about sql-prod-01"),
        ("Restart the SQL Server service on sql-prod-01.", "restart_service, which no analyzer proposed"),
        ("Drop the index on Orders to speed it up.", "which no analyzer proposed"),
        ("You should increase max memory on sql-prod-01 [E1].", "which no analyzer proposed"),
        ("The server has not been patched with new security updates.", "says what the findings do not"),
    ],
)
def test_unsupported_sentences_are_dropped(sentence: str, why: str, report: Report) -> None:
    grounded = ground(sentence, report)
    assert grounded.kept == []
    assert why in grounded.dropped[0][1]


def test_a_healthy_report_is_never_explained_as_a_problem() -> None:
    healthy = _report([NO_BLOCKING_02])
    assert ground("sql-prod-02 looks healthy: no session is blocked [E3].", healthy).kept
    assert "describes a problem" in (_why("The database file on sql-prod-02 is near full.", healthy) or "")
    assert "describes a problem" in (_why("The most likely cause is a slow disk.", healthy) or "")


def test_the_text_ends_at_a_sentence_boundary_and_repeats_go() -> None:
    sentences, fragment = split_sentences(
        "Session 57 blocks [E1]. It is sleeping. [E1] Check what it runs under r"
    )
    assert (
        sentences == ["Session 57 blocks [E1].", "It is sleeping. [E1]"]
        and fragment == "Check what it runs under r"
    )
    report = _report([BLOCKING])
    grounded = ground(
        "Session 57 blocks 3 sessions [E1]. Session 57 blocks 3 sessions [E1]. It holds lo", report
    )
    assert grounded.text == "Session 57 blocks 3 sessions [E1]."
    assert sorted(why for _, why in grounded.dropped) == [
        "cut off mid-sentence",
        "repeats an earlier sentence",
    ]


def test_unknown_evidence_references_are_removed() -> None:
    report = _report([BLOCKING])
    assert (
        ground("Session 57 is the head blocker [E1] [E42].", report).text
        == "Session 57 is the head blocker [E1]."
    )


def test_the_digest_gives_entity_what_numbers_and_evidence(report: Report) -> None:
    lines = digest(report.findings)
    assert lines[0] == {
        "refs": "[E1]",
        "severity": "critical",
        "entity": "sql-prod-01",
        "what": "blocking chain",
        "title": "Blocking chain on sql-prod-01: head blocker session 57 blocks 3 sessions",
        "numbers": "session 88 blocked by 57, waiting for 61 s; session 91 blocked by 88",
    }
    assert lines[-1]["severity"] == "info"  # problems first


CONTRADICTING = "The system looks healthy and nothing needs attention."
WRONG_NUMBER = "The head blocker has kept its transaction open for 95 min [E1]."
UNKNOWN_HOST = "The reconciler on sql-prod-77 is also waiting [E1]."
WRONG_REF = "Head blocker session 57 blocks 3 sessions [E2]."
GOOD = "Session 57 on sql-prod-01 is the head blocker and blocks 3 sessions [E1]."
ROUTE = {"database": True, "logs": False, "metrics": False, "knowledge": False}
GOOD_TOO = "Kill session 57 on sql-prod-01 after a human approves it [E1]."


def _scripted_run(texts: list[str], knowledge_factory: Any) -> tuple[dict[str, Any], ScriptedChatModel]:
    scenario = load_scenario(EXAMPLES / "mssql-blocking-01.yaml")
    chat = ScriptedChatModel(structured={"Routing": [ROUTE], "FollowUp": []}, texts=texts)
    model = ModelHandle.from_chat("scripted", chat)
    run = investigate_scenario(scenario, model, RunOptions(semantic_routing=False), knowledge_factory)
    return run.values, chat


def test_a_scripted_model_s_unsupported_sentences_are_dropped_and_the_rest_kept(knowledge_factory) -> None:  # type: ignore[no-untyped-def]
    text = " ".join([GOOD, CONTRADICTING, WRONG_NUMBER, UNKNOWN_HOST, WRONG_REF, GOOD_TOO])
    values, chat = _scripted_run([text], knowledge_factory)
    report = values["report"]
    assert report["explanation"] == f"{GOOD} {GOOD_TOO}"
    assert report["explanation_sentences"] == 2 and report["explanation_dropped"] == 4
    reasons = " | ".join(report["explanation_dropped_reasons"])
    for fragment in ["healthy while a finding is critical", "number 95 min", "sql-prod-77", "[E2]"]:
        assert fragment in reasons
    assert GOOD in values["answer"] and CONTRADICTING not in values["answer"]
    # the model saw a compact digest of the findings, not their prose
    prompt = str(chat.seen[-1][1][1].content)
    assert "[E1] | critical | sql-prod-01 | blocking chain |" in prompt
    assert "Head blocker session 57 (svc_batch" not in prompt


def test_nothing_supported_means_no_explanation_and_a_note(knowledge_factory) -> None:  # type: ignore[no-untyped-def]
    values, _ = _scripted_run([f"{CONTRADICTING} {UNKNOWN_HOST}"], knowledge_factory)
    report = values["report"]
    assert report["explanation"] is None and report["explanation_dropped"] == 2
    assert any("explanation was left out" in n for n in report["notes"])


def test_the_eval_records_kept_and_dropped_sentences(knowledge_factory) -> None:  # type: ignore[no-untyped-def]
    scenario = load_scenario(EXAMPLES / "mssql-blocking-01.yaml")
    chat = ScriptedChatModel(structured={"Routing": [ROUTE]}, texts=[f"{GOOD} {WRONG_REF}"])
    result = run_scenario(scenario, ModelHandle.from_chat("scripted", chat), RunOptions(), knowledge_factory)
    assert (result.explanation_sentences, result.explanation_dropped) == (1, 1)
    none = run_scenario(scenario, NO_MODEL, RunOptions(), knowledge_factory)
    assert (none.explanation_sentences, none.explanation_dropped) == (0, 0)


def test_lists_and_markdown_become_sentences_and_list_numbers_are_not_claims() -> None:
    text = "Checks performed:\n1. **Blocking**: session 57 blocks 3 sessions [E1]\n2. `sql-prod-01` waits\n3."
    sentences, fragment = split_sentences(text)
    assert sentences == ["Checks performed: Blocking: session 57 blocks 3 sessions [E1]."]
    assert fragment == "sql-prod-01 waits"  # the last line may have been cut off


def test_numbers_the_request_gave_may_be_repeated() -> None:
    report = _report([BLOCKING]).model_copy(update={"request": "Alert: checkout p95 above 800 ms"})
    assert ground(
        "The alert fired because checkout p95 went above 800 ms while session 57 blocked [E1].", report
    ).kept
