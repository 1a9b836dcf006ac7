"""The remediation nodes after the approval gate: screen proposals against the policy, check each
decision, run what is approved exactly once, verify it worked, write the outcome back.

The only module that imports the executors' layer. A resumed node starts again from the top, so each
node is idempotent: audit entries are keyed by what they record, and an executor runs only after
its idempotency key is claimed in the ledger (a key already finished returns its recorded result).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any, Literal, cast

from langgraph.config import get_config, get_stream_writer
from langgraph.runtime import Runtime

from graphs.audit import canonical
from graphs.context import Context
from graphs.events import (
    ActionApproved,
    ActionExecuted,
    ActionExecuting,
    ActionRefused,
    ActionRejected,
    ActionVerified,
    GraphEvent,
)
from graphs.proposals import ProposalRecord, apply_decision, request_id, screen
from graphs.remediation import ActionRuntime
from graphs.state import State
from graphs.verify import offer_knowledge, verify_outcome, write_back
from tools.actions.base import ActionRequest, ExecutionResult
from tools.base import Evidence, ProposedAction
from tools.world import parse_ts

log = logging.getLogger(__name__)


def _thread() -> str:
    return str(get_config().get("configurable", {}).get("thread_id", "?"))


def _records(state: State) -> list[ProposalRecord]:
    return [ProposalRecord.model_validate(r) for r in state.get("remediations") or []]


def _alert_name(state: State) -> str | None:
    alert = state.get("alert")
    return str(alert.get("name")) if alert else None


def _audit_history(
    rt: ActionRuntime, thread: str, rec: ProposalRecord, since: int, step: str, **extra: Any
) -> None:
    """One audit entry, and one progress event, per transition of `rec` from history index `since` on."""
    emit = get_stream_writer()
    for i in range(since, len(rec.history)):
        t = rec.history[i]
        rt.audit.append(
            thread_id=thread,
            kind=t.state,
            actor=t.by,
            subject=rec.fingerprint,
            event_key=f"{thread}:{rec.fingerprint}:{i}:{step}",
            data={"action": rec.action, "target": rec.target, "note": t.note, "at": t.at, **extra},
        )
        event = transition_event(rec, t.state, t.by, t.note)
        if event is not None:
            emit(event)


def transition_event(rec: ProposalRecord, state: str, by: str, note: str) -> GraphEvent | None:
    """The typed event a change of a proposal's state announces (None: not worth announcing)."""
    action, target, fingerprint = rec.action, rec.target, rec.fingerprint
    if state == "approved":
        by_whom = [a.approver for a in rec.approvals] or [by]
        return ActionApproved(
            action=action, target=target, fingerprint=fingerprint, by=by_whom, auto=rec.auto_approved
        )
    if state == "rejected" or state == "expired":
        gone = cast(Literal["rejected", "expired"], state)
        return ActionRejected(
            action=action, target=target, fingerprint=fingerprint, state=gone, by=by, note=note
        )
    if state == "denied" or state == "refused":
        stage: Literal["policy", "execution"] = "policy" if state == "denied" else "execution"
        return ActionRefused(stage=stage, reason=note, action=action, target=target, fingerprint=fingerprint)
    if state == "executed" or state == "dry_run" or state == "failed":
        return ActionExecuted(
            action=action,
            target=target,
            fingerprint=fingerprint,
            outcome=cast(Literal["executed", "dry_run", "failed"], state),
            detail=note,
            external_id=(rec.result or {}).get("external_id"),
        )
    if state == "verified" or state == "unresolved":
        return ActionVerified(
            action=action, target=target, fingerprint=fingerprint, resolved=state == "verified", summary=note
        )
    return None


def _with_policy(state: State, records: list[ProposalRecord], rid: str) -> list[dict[str, Any]]:
    proposals = [dict(p) for p in state.get("proposals", [])]
    for r in records:
        proposals[r.index]["policy"] = r.policy_view(rid)
    return proposals


def screen_proposals(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Apply the remediation policy to the proposals: not allowed, auto-approved (low risk, by an
    explicit rule) or pending a human; each proposal's first transitions go to the audit log."""
    rt = runtime.context.actions
    if rt is None:
        return {}
    thread = _thread()
    proposals = [ProposedAction.model_validate(p) for p in state.get("proposals", [])]
    records = screen(proposals, rt.policy, _alert_name(state), rt.clock(), rt.longest_wait)
    for rec in records:
        _audit_history(
            rt,
            thread,
            rec,
            0,
            "screen",
            requester=state.get("requester"),
            risk=rec.risk,
            approvals_required=rec.approvals_required,
            dry_run=rec.dry_run,
            expires_at=rec.expires_at,
        )
    rid = request_id(thread, records)
    return {
        "remediations": [r.model_dump(mode="json") for r in records],
        "proposals": _with_policy(state, records, rid),
        "approval_request_id": rid,
        "decision_step": "auto",
        "status": (
            "awaiting_approval"
            if any(r.state == "pending" for r in records)
            else "approved"
            if any(r.state == "approved" for r in records)
            else "done"
        ),
    }


def route_after_screening(state: State) -> Literal["request_approval", "execute_actions", "__end__"]:
    records = _records(state)
    if not records or any(r.state == "pending" for r in records):
        return "request_approval"  # without an ActionRuntime the gate works as before
    return "execute_actions" if any(r.state == "approved" for r in records) else "__end__"


def check_approval(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Apply the decision the gate recorded (graphs/proposals.py says when an approval counts); the
    decision and anything refused go to the audit log."""
    rt = runtime.context.actions
    if rt is None:
        return {}
    thread = _thread()
    decision = dict(state.get("approval") or {})
    records = _records(state)
    before = {r.fingerprint: len(r.history) for r in records}
    n = int(state.get("decisions") or 0)
    shown = {
        k: decision.get(k)
        for k in (
            "decision",
            "approver",
            "role",
            "comment",
            "actions",
            "fingerprints",
            "thread_id",
            "request_id",
            "requester",
            "decided_at",
        )
    }
    step = hashlib.sha256(f"{n}:{canonical(shown)}".encode()).hexdigest()[:16]
    requester = state.get("requester") or decision.get("requester") or None
    now = rt.clock()
    refusals = apply_decision(
        records,
        decision,
        policy=rt.policy,
        requester=requester,
        thread_id=thread,
        current_request=str(state.get("approval_request_id") or ""),
        now=now,
    )
    rt.audit.append(
        thread_id=thread,
        kind="decision",
        actor=str(decision.get("approver") or "?"),
        subject=thread,
        event_key=f"{thread}:decision:{step}",
        data={**shown, "requester": requester},
    )
    emit = get_stream_writer()
    for i, refusal in enumerate(refusals):
        emit(
            ActionRefused(
                stage="decision", reason=refusal.reason, fingerprint=",".join(refusal.fingerprints) or None
            )
        )
        rt.audit.append(
            thread_id=thread,
            kind="decision_refused",
            actor=str(decision.get("approver") or "?"),
            subject=",".join(refusal.fingerprints) or thread,
            event_key=f"{thread}:decision:{step}:refused:{i}",
            data={"reason": refusal.reason, "decision": shown},
        )
    for rec in records:
        _audit_history(rt, thread, rec, before[rec.fingerprint], step)
    states = {r.state for r in records}
    if "pending" in states:
        status = "awaiting_approval"
    elif "approved" in states:
        status = "approved"
    elif "expired" in states and "rejected" not in states:
        status = "expired"
    else:
        status = "rejected"
    outcome = _decision_outcome(records, refusals)
    return {
        "remediations": [r.model_dump(mode="json") for r in records],
        "proposals": _with_policy(state, records, str(state.get("approval_request_id") or "")),
        "decisions": n + 1,
        "decision_step": step,
        "status": status,
        "approval": {**decision, "outcome": outcome, "refused": [r.reason for r in refusals]},
    }


def _decision_outcome(records: list[ProposalRecord], refusals: list[Any]) -> str:
    parts = [f"refused: {r.reason}" for r in refusals]
    for r in records:
        if r.state == "pending":
            parts.append(
                f"{r.action} {r.target}: {len(r.approvals)} of {r.approvals_required} approval(s); waiting"
            )
        elif r.state in ("approved", "rejected", "expired"):
            parts.append(f"{r.action} {r.target}: {r.state}")
    return "; ".join(parts) or "nothing to decide"


def route_after_check(state: State) -> Literal["request_approval", "execute_actions", "__end__"]:
    records = _records(state)
    if any(r.state == "pending" for r in records):
        return "request_approval"
    return "execute_actions" if any(r.state == "approved" for r in records) else "__end__"


def execute_actions(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Run each approved proposal once: re-check its approval, expiry and cooldown under the current
    policy, claim its idempotency key, run its executor (dry run unless both the approval-time and
    the current rule allow a real run), record the result."""
    rt = runtime.context.actions
    if rt is None:
        return {}
    thread = _thread()
    step = str(state.get("decision_step") or "auto")
    records = _records(state)
    results: list[dict[str, Any]] = []
    for rec in records:
        if rec.state != "approved":
            continue
        before = len(rec.history)
        result = _execute_one(rt, state, rec, thread)
        if result is not None:
            rec.result = result.model_dump(mode="json")
            results.append(rec.result)
        _audit_history(rt, thread, rec, before, step, result=rec.result)
    done = [r for r in records if r.state in ("executed", "dry_run")]
    return {
        "remediations": [r.model_dump(mode="json") for r in records],
        "executed_actions": results,
        "status": "executed" if done else "done",
    }


def _execute_one(rt: ActionRuntime, state: State, rec: ProposalRecord, thread: str) -> ExecutionResult | None:
    now = rt.clock()
    proposal = ProposedAction.model_validate(state["proposals"][rec.index])
    problem = _still_allowed(rt, state, rec, proposal)
    if problem == "expired":
        rec.move("expired", now, "opscopilot", f"approved, but not run before it expired at {rec.expires_at}")
        return None
    rule = rt.policy.rule_for(proposal, _alert_name(state))
    dry_run = rt.replay or rec.dry_run or rule is None or rule[1].dry_run
    key = hashlib.sha256(f"{thread}|{rec.fingerprint}|{'dry' if dry_run else 'live'}".encode()).hexdigest()
    if problem is None and not dry_run and rule is not None:
        last = rt.ledger.last_execution(rec.entity, now - timedelta(seconds=rule[1].cooldown), exclude=key)
        if last is not None:
            problem = (
                f"cooldown: {last.action} ran on {rec.entity} at {last.finished_at:%Y-%m-%d %H:%M:%S} UTC, "
                f"less than {rule[1].cooldown:g} s ago"
            )
    executor = rt.executors.get(proposal.action)
    if problem is None and executor is None:
        problem = f"no executor is configured for {proposal.action} (see the `actions` settings)"
    if problem is not None:
        result = ExecutionResult(outcome="refused", action=rec.action, target=rec.target, detail=problem)
        rec.move("refused", now, "opscopilot", problem)
        return result
    request = ActionRequest(
        key=key,
        thread_id=thread,
        proposal=proposal,
        evidence=[
            Evidence.model_validate(e) for e in state.get("evidence", []) if e["id"] in proposal.evidence
        ],
        observed_at=parse_ts(state["now"]),
        summary=str((state.get("report") or {}).get("headline") or ""),
        findings=[f["title"] for f in state.get("findings", [])][:10],
        severity=_severity(state, rec),
        approvers=[a.approver for a in rec.approvals] or ["policy (auto-approved)"],
        dry_run=dry_run,
    )
    result = run_once(rt, executor, request, rec)
    if result.replayed:  # each attempt served from the ledger is on the record too
        rt.audit.append(
            thread_id=thread,
            kind="replayed",
            actor="opscopilot",
            subject=rec.fingerprint,
            event_key=f"{thread}:{rec.fingerprint}:replayed:{now.isoformat()}",
            data={
                "action": rec.action,
                "target": rec.target,
                "key": key,
                "note": "already executed; not run again",
            },
        )
    note = (
        result.detail
        if not result.replayed
        else f"already ran under key {key[:12]}; not run again: {result.detail}"
    )
    rec.move(result.outcome, rt.clock(), "opscopilot", note[:500])
    return result


def _severity(state: State, rec: ProposalRecord) -> str:
    for f in state.get("findings", []):
        p = f.get("remediation")
        if p and ProposedAction.model_validate(p).fingerprint() == rec.fingerprint:
            return str(f.get("severity") or "warning")
    return "warning"


def _still_allowed(
    rt: ActionRuntime, state: State, rec: ProposalRecord, proposal: ProposedAction
) -> str | None:
    """Why this approved proposal may not run now (None: it may). Checked again right before running,
    because a resumed run may come much later and under a changed policy."""
    if proposal.fingerprint() != rec.fingerprint:
        return "the proposal changed after it was approved (its fingerprint no longer matches)"
    if rec.expired(rt.clock()):
        return "expired"
    match = rt.policy.rule_for(proposal, _alert_name(state))
    if match is None:
        return f"the current policy no longer allows {proposal.action} on {rec.entity}"
    rule = match[1]
    if rec.auto_approved:
        if not (rule.auto_approve and rule.risk == "low"):
            return "it was auto-approved, but the current policy no longer auto-approves it"
        return None
    requester = state.get("requester") or (state.get("approval") or {}).get("requester")
    approvers = {a.approver.strip().casefold() for a in rec.approvals}
    if not requester:
        return "no requester is recorded, so there is no approval from someone other than the requester"
    if requester.strip().casefold() in approvers:
        return "the requester approved it: an approval must come from someone else"
    if len(approvers) < rule.approvals:
        return f"it has {len(approvers)} approval(s) and the current policy asks for {rule.approvals}"
    return None


def run_once(
    rt: ActionRuntime, executor: Any, request: ActionRequest, rec: ProposalRecord
) -> ExecutionResult:
    """Run the executor unless this key already ran; see graphs/ledger.py for claims and stale ones."""
    ledger, key = rt.ledger, request.key
    waited = 0.0
    while True:
        now = rt.clock()
        row = ledger.get(key)
        if row is not None and row.finished_at is not None:
            return ExecutionResult.model_validate({**(row.result or {}), "replayed": True})
        if row is None:
            claimed = ledger.claim(
                key,
                thread_id=request.thread_id,
                fingerprint=rec.fingerprint,
                action=rec.action,
                entity=rec.entity,
                dry_run=request.dry_run,
                now=now,
            )
            if claimed:
                break
            continue
        if not row.stale(now, rt.lease) and waited < rt.lease.total_seconds():
            rt.sleep(rt.wait_poll_s)  # another attempt is running it: wait for its result
            waited += rt.wait_poll_s
            continue
        try:
            found = executor.reconcile(request)
        except Exception as exc:
            found = ExecutionResult(
                outcome="failed",
                action=rec.action,
                target=rec.target,
                detail=(
                    f"an earlier attempt ({row.owner}, {row.claimed_at:%H:%M:%S}) did not record its result "
                    f"and what it did cannot be checked ({exc}); it is not run again: check the target by "
                    "hand"
                ),
            )
        if not ledger.take_over(key, row.owner, now):
            continue
        if found is not None:
            ledger.finish(key, found.outcome, found.model_dump(mode="json"), rt.clock())
            return found
        break  # the interrupted attempt had no effect: run it
    get_stream_writer()(
        ActionExecuting(
            action=rec.action, target=rec.target, fingerprint=rec.fingerprint, dry_run=request.dry_run
        )
    )
    rt.audit.append(
        thread_id=request.thread_id,
        kind="executing",
        actor="opscopilot",
        subject=rec.fingerprint,
        event_key=f"{request.thread_id}:run:{key}:{ledger.get(key).claimed_at.isoformat()}",  # type: ignore[union-attr]
        data={"action": rec.action, "target": rec.target, "dry_run": request.dry_run, "key": key},
    )
    result = executor.execute(request)
    ledger.finish(key, result.outcome, result.model_dump(mode="json"), rt.clock())
    return result


def verify_outcomes(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """After the policy's delay, re-run the view tool that produced each executed proposal's finding
    (is the blocking gone? did the disk stop growing?), record the outcome, write it to the ITSM
    record where one exists and offer it to the knowledge base as a past incident."""
    ctx = runtime.context
    rt = ctx.actions
    if rt is None:
        return {}
    thread = _thread()
    step = str(state.get("decision_step") or "auto")
    records = _records(state)
    lines = []
    for rec in records:
        if rec.state == "executed":
            before = len(rec.history)
            proposal = ProposedAction.model_validate(state["proposals"][rec.index])
            verification = verify_outcome(rt, ctx, state, rec, proposal)
            rec.verification = verification.model_dump(mode="json")
            rec.move(
                "verified" if verification.resolved else "unresolved",
                rt.clock(),
                "opscopilot",
                verification.summary,
            )
            _audit_history(rt, thread, rec, before, step, verification=rec.verification)
            write_back(rt, state, rec, thread)
        if rec.result is not None:
            lines.append(f"{rec.action} {rec.target}: {rec.state}. {rec.history[-1].note}")
    offer_knowledge(rt, state, records, thread)
    ran = any(r.state in ("executed", "verified", "unresolved") for r in records)
    outcome = " | ".join(lines) + ("" if ran else (" | " if lines else "") + "nothing was run")
    approval = {**(state.get("approval") or {}), "outcome": outcome}
    return {
        "remediations": [r.model_dump(mode="json") for r in records],
        "approval": approval,
        "status": "done",
    }
