"""After an action ran: re-run the view tool that produced its finding to see whether the problem is
gone, write the outcome to the ITSM record where one exists, and offer the investigation with its
outcome to the knowledge base (tools/knowledge/learn.py)."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import BaseModel, Field

from agents.registry import REGISTRY
from graphs.context import Context
from graphs.proposals import ProposalRecord
from graphs.remediation import ActionRuntime
from graphs.state import State
from tools.base import Evidence, Finding, ProposedAction, ViewTool
from tools.knowledge.learn import InvestigationOutcome, save_outcome
from tools.world import parse_ts

log = logging.getLogger(__name__)

NOTIFY = {"create_ticket", "page_oncall"}  # they tell people; they do not make the finding go away


class Verification(BaseModel):
    resolved: bool
    summary: str
    tool: str | None = None
    checks: int = 0
    still_present: list[str] = Field(default_factory=list, description="titles of the findings still there")
    others: list[str] = Field(default_factory=list, description="other findings of the same kind, now")


def _origin(state: State, rec: ProposalRecord) -> tuple[Finding | None, Evidence | None]:
    """The finding that proposed this action, and the evidence (view tool, entity) it came from."""
    finding = None
    for f in state.get("findings", []):
        p = f.get("remediation")
        if p and ProposedAction.model_validate(p).fingerprint() == rec.fingerprint:
            finding = Finding.model_validate(f)
            break
    evidence = [Evidence.model_validate(e) for e in state.get("evidence", [])]
    cited = finding.evidence if finding else []
    for e in evidence:
        if e.id in cited and e.entity == rec.entity and _tool(e) is not None:
            return finding, e
    return finding, None


def _tool(ev: Evidence) -> ViewTool | None:
    spec = REGISTRY.get(ev.specialist)
    return spec.tool(ev.tool) if spec else None


def _same_target(found: Finding, proposal: ProposedAction) -> bool:
    mine, theirs = proposal.target_ref, found.remediation.target_ref if found.remediation else None
    if mine is None or theirs is None:
        return False
    same = (mine.entity, mine.kind, mine.id) == (theirs.entity, theirs.kind, theirs.id)
    return same and mine.attrs.get("series") == theirs.attrs.get("series")


def verify_outcome(
    rt: ActionRuntime, ctx: Context, state: State, rec: ProposalRecord, proposal: ProposedAction
) -> Verification:
    """Wait `verify_after`, then re-run the view tool until the finding is gone or `verify_for` passed."""
    finding, ev = _origin(state, rec)
    result = rec.result or {}
    if finding is None or ev is None:
        return Verification(resolved=False, summary="cannot verify: the finding's view tool is not known")
    tool = _tool(ev)
    assert tool is not None
    match = rt.policy.rule_for(proposal, (state.get("alert") or {}).get("name"))
    after, window = (match[1].verify_after, match[1].verify_for) if match else (10.0, 60.0)
    rt.sleep(after)
    deadline = rt.clock().timestamp() + window
    # the investigation's clock moved on by the time since the proposal: wall time for a live run,
    # the scenario's own time line for a replayed one
    proposed = datetime.fromisoformat(rec.proposed_at)
    start = parse_ts(state["now"]) if state.get("now") else proposed
    checks = 0
    while True:
        checks += 1
        out = tool(ctx.tool_context(start + (rt.clock() - proposed)), ev.entity)
        errors = [e.error for e in out.evidence if e.error]
        if not errors and not any(e.rows or e.row_count for e in out.evidence):
            errors = ["it read no data, so it cannot tell"]
        same_kind = [f for f in out.findings if f.kind == finding.kind and f.entity == finding.entity]
        still = [f for f in same_kind if _same_target(f, proposal)]
        if not errors and not still:
            break
        if rt.clock().timestamp() >= deadline:
            break
        rt.sleep(min(max(window / 6, 1.0), max(deadline - rt.clock().timestamp(), 0.0)))
    others = [f.title for f in same_kind if f not in still]
    name = f"{ev.tool}({ev.entity})"
    if errors:
        return Verification(
            resolved=False,
            tool=name,
            checks=checks,
            summary=f"could not verify: {name} failed: {errors[0]}",
        )
    if rec.action in NOTIFY:
        delivered = bool(result.get("external_id"))
        state_now = "still present" if still else "no longer present"
        return Verification(
            resolved=delivered,
            tool=name,
            checks=1,
            still_present=[f.title for f in still],
            others=others,
            summary=(
                f"{'delivered' if delivered else 'not confirmed'} ({result.get('external_id') or 'no id'}); "
                f"the finding is {state_now} ({name})"
            ),
        )
    if still:
        return Verification(
            resolved=False,
            tool=name,
            checks=checks,
            still_present=[f.title for f in still],
            others=others,
            summary=f"not resolved after {window:g} s: {name} still finds: {still[0].title}",
        )
    gone = f"no longer found: {finding.title} ({name}, check {checks})"
    if others:
        gone += f"; still there: {others[0]}"
    return Verification(resolved=True, tool=name, checks=checks, others=others, summary=gone)


def _records_to_note(state: State, rec: ProposalRecord) -> list[str]:
    """ITSM records this outcome belongs to: a ticket this run created, and records in the evidence
    (open incidents and changes) about the same entity."""
    out: list[str] = []
    for r in state.get("remediations") or []:
        res = r.get("result") or {}
        if r.get("action") == "create_ticket" and res.get("outcome") == "executed" and res.get("external_id"):
            out.append(str(res["external_id"]))
    for e in state.get("evidence", []):
        if e.get("specialist") != "itsm":
            continue
        for row in e.get("rows") or []:
            number = row.get("number")
            if number and (row.get("cmdb_ci") == rec.entity or e.get("entity") == rec.entity):
                out.append(str(number))
    return list(dict.fromkeys(out))


def _note(rec: ProposalRecord, thread: str) -> str:
    result = rec.result or {}
    verification = rec.verification or {}
    who = ", ".join(a.approver for a in rec.approvals) or "policy (auto-approved)"
    return (
        f"OpsCopilot {rec.action} on {rec.target}, approved by {who}: {result.get('detail', '')}\n"
        f"Outcome: {rec.state}. {verification.get('summary', '')}\n"
        f"Investigation {thread}; audit subject {rec.fingerprint[:16]}."
    )


def write_back(rt: ActionRuntime, state: State, rec: ProposalRecord, thread: str) -> None:
    """Add the outcome as a work note to each ITSM record it belongs to (each once, audited)."""
    if rt.notes is None:
        return
    for record in _records_to_note(state, rec):
        if not rt.notes.writable(record):
            continue
        key = f"{thread}:{rec.fingerprint}:note:{record}"
        if rt.audit.find(key) is not None:
            continue  # written by an earlier attempt of this node
        try:
            done, tried = rt.notes.add(record, _note(rec, thread))
            kind, data = "noted", {"record": record, "detail": done, "tried": tried}
        except Exception as exc:  # the outcome stands; the note is reported as not written
            log.warning("work note on %s failed: %s", record, exc)
            kind, data = "note_failed", {"record": record, "detail": str(exc)}
        rt.audit.append(
            thread_id=thread, kind=kind, actor="opscopilot", subject=rec.fingerprint, event_key=key, data=data
        )


def learned_outcome(
    state: State, records: list[ProposalRecord], thread: str, at: datetime
) -> InvestigationOutcome:
    """How the investigation ended, as the knowledge base learns it (tools/knowledge/learn.py): what
    ran and by whose approval; `verified` when every action that was to fix something is gone from
    the view tool's findings (a ticket or a page informs, it fixes nothing), else `executed`."""
    ran = [r for r in records if r.state in ("verified", "unresolved")]
    fixing = [r for r in ran if r.action not in NOTIFY]
    verified = bool(fixing) and all(r.state == "verified" for r in fixing)
    approvers = list(dict.fromkeys(a.approver for r in ran for a in r.approvals)) or [
        "policy (auto-approved)"
    ]
    notes = [f"{r.action} {r.target}: {(r.verification or {}).get('summary', '')}" for r in ran]
    tickets = [
        str((r.result or {}).get("external_id"))
        for r in ran
        if r.action == "create_ticket" and (r.result or {}).get("external_id")
    ]
    return InvestigationOutcome(
        kind="verified" if verified else "executed",
        by=", ".join(approvers),
        at=at,
        note="; ".join(notes)[:2000],
        actions=[f"{r.action} {r.target}" for r in ran],
        thread_id=thread,
        ticket=tickets[0] if tickets else None,
    )


def offer_knowledge(rt: ActionRuntime, state: State, records: list[ProposalRecord], thread: str) -> None:
    """Offer the investigation and what its actions did to the knowledge base as a past incident
    (`save_outcome`: idempotent by id; once per investigation, audited)."""
    if rt.knowledge is None or not any(r.state in ("verified", "unresolved") for r in records):
        return
    key = f"{thread}:knowledge"
    if rt.audit.find(key) is not None:
        return
    report = {**(state.get("report") or {}), "request": state.get("request") or ""}
    try:
        incident = save_outcome(rt.knowledge, report, learned_outcome(state, records, thread, rt.clock()))
        kind, data = "offered_to_knowledge", {"incident": incident.id, "title": incident.title}
    except Exception as exc:  # the knowledge base is a bonus; the outcome stands
        log.warning("offering %s to the knowledge base failed: %s", thread, exc)
        kind, data = "knowledge_failed", {"detail": str(exc)}
    rt.audit.append(thread_id=thread, kind=kind, actor="opscopilot", subject=thread, event_key=key, data=data)
