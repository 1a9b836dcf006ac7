"""Hybrid retrieval, filters, recency, runbooks beside incidents, HyDE, citations and learning, with the
real embedding model and an embedded Chroma."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from agents.knowledge import hypothetical_incident
from agents.llm import ModelHandle
from graphs.synthesize import Report, render_answer
from tests.scripted import ScriptedChatModel
from tools.knowledge.cite import citation_lines, citations_from_findings
from tools.knowledge.documents import KnowledgeDoc
from tools.knowledge.learn import (
    InvestigationOutcome,
    KnowledgeSink,
    incident_from_investigation,
    save_outcome,
)
from tools.knowledge.retrieval import Query, code_like
from tools.knowledge.store import KnowledgeStore
from tools.knowledge.views import similar_incidents
from tools.sources import Sources, ToolContext

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _doc(id: str, title: str, symptoms: str, **kw: object) -> KnowledgeDoc:
    return KnowledgeDoc(id=id, title=title, symptoms=symptoms, **kw)  # type: ignore[arg-type]


DOCS = [
    _doc("INC-100", "Transaction log full on Sales", "error 9002, the log for database Sales is full",
         services=["sql-prod-01"], occurred_at="2025-07-01T00:00:00Z", root_cause="log backups failed",
         resolution="fixed the backup job credentials"),
    _doc("INC-101", "Log space running out on Billing", "the transaction log is nearly full, growth blocked",
         services=["sql-prod-02"], occurred_at="2026-02-01T00:00:00Z", root_cause="a long open transaction",
         resolution="committed the stuck batch"),
    _doc("INC-102", "Deadlocks between checkout and stock", "deadlock detected, SQLSTATE 40P01 in app logs",
         services=["pg-orders-01"], cis=["pg-orders-01"], occurred_at="2025-11-01T00:00:00Z",
         resolution="made both jobs lock rows in the same order"),
    _doc("INC-103", "Checkout slow after index drop", "checkout queries slow, full scans",
         services=["mysql-shop-01"], occurred_at="2024-01-01T00:00:00Z", resolution="recreated the index"),
    _doc("RB-1", "Transaction log is full", "what to do when a database log fills", kind="runbook",
         services=["sql-prod-01"],
         steps=["Check log_reuse_wait_desc", "Take a log backup", "Grow the log if needed"],
         url="https://wiki.example.com/rb/1"),
]  # fmt: skip


@pytest.fixture(scope="module")
def store() -> Iterator[KnowledgeStore]:
    with KnowledgeStore(collection_name="retrieval-test", owned=True) as kb:
        kb.ingest(DOCS)
        yield kb


def _ids(store: KnowledgeStore, text: str, **kw: object) -> list[str]:
    return [h.doc.id for h in store.retrieve(Query(text=text, now=NOW, **kw))]  # type: ignore[arg-type]


def test_exact_codes_rank_first_where_meaning_alone_is_ambiguous(store: KnowledgeStore) -> None:
    assert code_like("9002") and code_like("40p01") and code_like("lck_m_u") and not code_like("2025")
    assert not code_like("96") and not code_like("checkout")
    lexical = _ids(store, "9002", mode="lexical")
    assert lexical == ["INC-100"]  # only one document holds the code
    hybrid = store.retrieve(Query(text="error 9002 on the database server", now=NOW))
    assert hybrid[0].doc.id == "INC-100" and hybrid[0].matched == ["9002"]
    assert hybrid[0].lexical_rank == 1
    assert _ids(store, "40P01 errors in the app")[0] == "INC-102"


def test_ticket_number_in_the_query_scores_one(store: KnowledgeStore) -> None:
    hit = store.retrieve(Query(text="what happened in INC-103?", now=NOW))[0]
    assert hit.doc.id == "INC-103" and hit.score == 1.0


def test_filters_by_service_ci_and_time(store: KnowledgeStore) -> None:
    assert _ids(store, "log full", services=("SQL-PROD-02",)) == ["INC-101"]
    assert _ids(store, "log full", cis=("pg-orders-01",)) == ["INC-102"]
    since = datetime(2025, 10, 1, tzinfo=UTC)
    assert set(_ids(store, "log full", since=since)) == {"INC-101", "INC-102"}
    assert set(_ids(store, "log full", until=since)) == {"INC-100", "INC-103"}
    assert _ids(store, "log full", services=("nothing-here",)) == []
    for mode in ("vector", "lexical"):
        assert _ids(store, "log full", services=("sql-prod-02",), mode=mode) == ["INC-101"]


def test_recent_incidents_are_preferred_among_equals() -> None:
    twins = [
        _doc(
            "OLD-1",
            "Replica lag on pg-orders-02",
            "replication lag climbing",
            occurred_at="2019-01-01T00:00:00Z",
        ),
        _doc(
            "NEW-1",
            "Replica lag on pg-orders-02",
            "replication lag climbing",
            occurred_at="2026-02-20T00:00:00Z",
        ),
    ]
    with KnowledgeStore(collection_name="recency-test", owned=True) as kb:
        kb.ingest(twins)
        assert _ids(kb, "replication lag on pg-orders-02")[0] == "NEW-1"
        assert {h.fused for h in kb.retrieve(Query(text="replication lag", mode="vector", now=NOW))} != set()


def test_runbooks_are_retrieved_apart_from_incidents(store: KnowledgeStore) -> None:
    assert "RB-1" not in _ids(store, "log is full")
    assert _ids(store, "log is full", kinds=("runbook",)) == ["RB-1"]
    hits = store.search("log is full", k=3)
    assert all(h.kind == "incident" for h in hits)


def _ctx(store: KnowledgeStore, **options: object) -> ToolContext:
    return ToolContext(
        sources=Sources(knowledge=store), now=NOW, start=NOW - timedelta(hours=1), end=NOW,
        history_start=NOW - timedelta(days=7), options=dict(options),
    )  # fmt: skip


def test_view_tool_cites_incidents_and_runbooks_with_links(store: KnowledgeStore) -> None:
    result = similar_incidents(_ctx(store), "sql-prod-01", query="error 9002: the transaction log is full")
    kinds = [(f.kind, f.data["incident_id"]) for f in result.findings]
    assert kinds[0] == ("similar_incident", "INC-100") and ("runbook", "RB-1") in kinds
    assert ("similar_incident", "INC-101") not in kinds
    runbook = next(f for f in result.findings if f.kind == "runbook")
    assert (
        runbook.data["steps"][1] == "Take a log backup"
        and runbook.data["url"] == "https://wiki.example.com/rb/1"
    )
    assert "runbook RB-1" in result.evidence[0].summary
    incident = result.findings[0]
    assert incident.detail.startswith("Last time on 2025-07-01 the cause was: log backups failed.")
    assert "What fixed it then: fixed the backup job credentials." in incident.detail

    citations = citations_from_findings(reversed(result.findings))
    assert citations[0].kind == "incident" and citations[-1].kind == "runbook"  # incidents first
    text = "\n".join(citation_lines(citations))
    assert "Seen before (what fixed a past incident is a lead to check here, not a finding):" in text
    assert "    Last time, this fixed it: fixed the backup job credentials." in text
    assert 'Runbooks:\n  - RB-1 "Transaction log is full"' in text and "https://wiki.example.com/rb/1" in text
    assert "    [ ] 1. Check log_reuse_wait_desc\n    [ ] 2. Take a log backup" in text
    report = Report(
        request="q", model="none", headline="h", findings=[], evidence=[], citations=citations, proposals=[]
    )
    answer = render_answer(report)
    assert answer.index("Seen before") < answer.index("Runbooks:") < answer.index("Proposed remediation")


def test_hyde_hypothesis_is_searched_with_the_query(store: KnowledgeStore) -> None:
    query = "the sales app cannot write anything"
    plain = similar_incidents(_ctx(store), "estate", query=query, min_score=0.0)
    seen: list[str] = []

    def hypothesis(text: str) -> str:
        seen.append(text)
        return "Transaction log full: error 9002, log backups failed, log_reuse_wait LOG_BACKUP"

    hyde = similar_incidents(
        _ctx(store, knowledge_hypothesis=hypothesis), "estate", query=query, min_score=0.0
    )
    assert seen == [f"{query} estate"]  # one hypothesis serves incidents and runbooks
    assert "(searched with a model-written hypothetical incident (HyDE))" in hyde.evidence[0].summary
    score = {r["id"]: r["score"] for r in plain.evidence[0].rows}
    score_hyde = {r["id"]: r["score"] for r in hyde.evidence[0].rows}
    assert score_hyde["INC-100"] > score["INC-100"] + 0.1


def test_hypothetical_incident_comes_from_the_model_and_is_redacted() -> None:
    chat = ScriptedChatModel(texts=["Transaction log full on sql-prod-01: error 9002 ..."])
    model = ModelHandle(name="scripted", chat=chat)
    text = hypothetical_incident(model, "log full, mail dba@example.com")
    assert text == "Transaction log full on sql-prod-01: error 9002 ..."
    prompt = str(chat.seen[0][1][-1].content)
    assert "dba@example.com" not in prompt and "log full" in prompt
    assert hypothetical_incident(ModelHandle.unavailable(), "anything") is None


REPORT = {
    "request": "Why is checkout timing out on sql-prod-01?",
    "headline": (
        "Most likely cause: Blocking chain on sql-prod-01: head blocker session 57 blocks 3 sessions."
    ),
    "findings": [
        {"severity": "critical", "kind": "blocking_chain", "entity": "sql-prod-01",
         "title": "Blocking chain on sql-prod-01: head blocker session 57 blocks 3 sessions"},
        {"severity": "info", "kind": "similar_incident", "entity": "sql-prod-01",
         "title": "Seen before: INC-2031"},
    ],
    "proposals": [{"action": "kill_session", "target": "sql-prod-01 session 57"}],
    "specialists": ["database", "knowledge"],
}  # fmt: skip


def test_an_outcome_becomes_a_past_incident_saved_once() -> None:
    at = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    outcome = InvestigationOutcome(
        kind="verified", by="alice", at=at, thread_id="inv-1", note="blocking cleared"
    )
    incident = incident_from_investigation(REPORT, outcome)
    assert incident.id.startswith("OPS-") and incident.id == incident_from_investigation(REPORT, outcome).id
    assert incident.services == ["sql-prod-01"] and incident.occurred_at == at
    assert incident.root_cause == "Blocking chain on sql-prod-01: head blocker session 57 blocks 3 sessions"
    assert incident.resolution == (
        "kill_session sql-prod-01 session 57: executed and verified by alice. blocking cleared"
    )
    assert {"learned", "verified", "database", "blocking_chain"} <= set(incident.tags)
    with KnowledgeStore(collection_name="learning-test", owned=True) as kb:
        assert isinstance(kb, KnowledgeSink)
        save_outcome(kb, REPORT, outcome)
        revision = kb.revision
        save_outcome(kb, REPORT, outcome)  # idempotent by id: nothing changes
        assert kb.revision == revision and kb.size() == 1
        hit = kb.search("checkout timing out, sessions blocked on sql-prod-01", k=1)[0]
        assert hit.incident.id == incident.id
        closed = InvestigationOutcome(kind="closed", by="bob", at=at, thread_id="inv-1", note="false alarm")
        save_outcome(kb, REPORT, closed)  # the same investigation, a new outcome: replaced
        assert kb.size() == 1
        doc = kb.get(incident.id)
        assert doc is not None and doc.resolution == "closed without action by bob. false alarm"
    with pytest.raises(ValueError, match="needs a note"):
        InvestigationOutcome(kind="closed", by="bob", at=at)


def test_hyde_reaches_the_tool_only_when_enabled_and_a_model_answers() -> None:
    from graphs.context import Context

    model = ModelHandle(name="scripted", chat=ScriptedChatModel(texts=["a hypothetical incident"]))
    on = Context(sources=Sources(), model=model, knowledge_hyde=True).tool_context(NOW).options
    assert on["knowledge_hypothesis"]("log full") == "a hypothetical incident"
    assert "knowledge_hypothesis" not in Context(sources=Sources(), model=model).tool_context(NOW).options
    off = Context(sources=Sources(), model=ModelHandle.unavailable(), knowledge_hyde=True).tool_context(NOW)
    assert "knowledge_hypothesis" not in off.options


def test_a_close_hit_without_the_query_s_code_is_not_cited() -> None:
    from tools.knowledge.views import _relevant
    from tools.sources import KnowledgeHit
    from tools.world import PastIncident

    def hit(id: str, score: float, codes: list[str]) -> KnowledgeHit:
        return KnowledgeHit(incident=PastIncident(id=id, title=id), score=score, codes=codes)

    coded, close, far = hit("A", 0.81, ["40p01"]), hit("B", 0.75, []), hit("C", 0.79, ["40p01"])
    assert [h.incident.id for h in _relevant([coded, close, far], 0.35)] == ["A", "C"]
    uncoded = [hit("A", 0.81, []), hit("B", 0.75, [])]
    assert [h.incident.id for h in _relevant(uncoded, 0.35)] == ["A", "B"]  # no code in play: both close
    assert _relevant([hit("A", 0.3, ["x_1"])], 0.35) == [] and _relevant([], 0.35) == []
