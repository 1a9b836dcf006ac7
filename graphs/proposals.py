"""The life of one proposal, as a state machine: proposed -> pending -> approved | rejected | expired
-> executed -> verified; or denied by the policy, or refused / failed / dry_run at execution.

Pure functions over JSON-shaped records (they live in the graph state): screening against the policy,
and applying a human decision with every rule that makes an approval count. Every change is a
transition with a time, an actor and a note; :meth:`ProposalRecord.move` refuses a transition the
machine does not have.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from graphs.policy import Policy, Risk, normalize_person
from tools.base import ProposedAction

ProposalState = Literal[
    "proposed",
    "pending",
    "approved",
    "rejected",
    "expired",
    "denied",
    "executed",
    "dry_run",
    "refused",
    "failed",
    "verified",
    "unresolved",
]
TRANSITIONS: dict[str, set[str]] = {
    "proposed": {"pending", "approved", "denied"},
    "pending": {"pending", "approved", "rejected", "expired"},
    "approved": {"executed", "dry_run", "refused", "failed", "expired"},
    "executed": {"verified", "unresolved"},
}
DECIDED = {
    "rejected",
    "expired",
    "denied",
    "dry_run",
    "refused",
    "failed",
    "verified",
    "unresolved",
    "executed",
}


class Transition(BaseModel):
    state: str
    at: str
    by: str
    note: str = ""


class Approval(BaseModel):
    approver: str
    role: str | None = None
    at: str


class ProposalRecord(BaseModel):
    """One proposal's lifecycle, kept in the graph state next to the proposal it tracks."""

    index: int = Field(description="position in state['proposals']")
    fingerprint: str
    action: str
    target: str = Field(description="rendered, escaped")
    entity: str
    state: ProposalState = "proposed"
    rule: int | None = None
    risk: Risk | None = None
    approvals_required: int = 1
    approver_roles: list[str] = Field(default_factory=list)
    dry_run: bool = True
    auto_approved: bool = False
    proposed_at: str
    expires_at: str | None = None
    approvals: list[Approval] = Field(default_factory=list)
    history: list[Transition] = Field(default_factory=list)
    result: dict[str, Any] | None = None
    verification: dict[str, Any] | None = None

    def move(self, to: ProposalState, at: datetime, by: str, note: str = "") -> None:
        if to not in TRANSITIONS.get(self.state, set()):
            raise ValueError(f"proposal {self.fingerprint[:12]}: no transition {self.state} -> {to}")
        self.state = to
        self.history.append(Transition(state=to, at=at.isoformat(), by=by, note=note))

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= datetime.fromisoformat(self.expires_at)

    def policy_view(self, request_id: str) -> dict[str, Any]:
        """What the approver is shown next to the proposal."""
        return {
            "fingerprint": self.fingerprint,
            "state": self.state,
            "risk": self.risk,
            "approvals_required": self.approvals_required,
            "approvals": [a.approver for a in self.approvals],
            "approver_roles": self.approver_roles,
            "dry_run": self.dry_run,
            "auto_approved": self.auto_approved,
            "expires_at": self.expires_at,
            "request_id": request_id,
        }


def target_label(p: ProposedAction) -> tuple[str, str]:
    """(rendered target, entity)."""
    if p.target_ref is not None:
        return p.target_ref.render(), p.target_ref.entity
    return p.display_target(), p.target


def screen(
    proposals: list[ProposedAction],
    policy: Policy,
    alert_name: str | None,
    now: datetime,
    longest_wait: timedelta | None = None,
) -> list[ProposalRecord]:
    """Apply the policy: not allowed (denied), allowed and approved by a low-risk rule, or pending.
    A proposal expires after its rule's `expires_after`, or `longest_wait` when that is sooner (the
    service's limit for every approval)."""
    records: list[ProposalRecord] = []
    per_action: dict[str, int] = {}
    allowed = 0
    for i, p in enumerate(proposals):
        target, entity = target_label(p)
        rec = ProposalRecord(
            index=i,
            fingerprint=p.fingerprint(),
            action=p.action,
            target=target,
            entity=entity,
            proposed_at=now.isoformat(),
        )
        rec.history.append(
            Transition(state="proposed", at=now.isoformat(), by="opscopilot", note=p.reason[:300])
        )
        match = policy.rule_for(p, alert_name)
        if p.target_ref is None:
            rec.move("denied", now, "policy", "it has no structured target, so no executor can act on it")
        elif match is None:
            rec.move("denied", now, "policy", f"no policy rule allows {p.action} on {entity}")
        else:
            number, rule = match
            per_action[p.action] = per_action.get(p.action, 0) + 1
            rec.rule, rec.risk, rec.dry_run = number, rule.risk, rule.dry_run
            rec.approvals_required, rec.approver_roles = rule.approvals, list(rule.approver_roles)
            wait = timedelta(seconds=rule.expires_after)
            rec.expires_at = (now + (min(wait, longest_wait) if longest_wait else wait)).isoformat()
            if per_action[p.action] > rule.max_targets:
                rec.move(
                    "denied",
                    now,
                    "policy",
                    f"blast radius: at most {rule.max_targets} {p.action} per investigation",
                )
            elif allowed >= policy.max_actions:
                rec.move(
                    "denied",
                    now,
                    "policy",
                    f"blast radius: at most {policy.max_actions} actions per investigation",
                )
            elif rule.auto_approve:
                allowed += 1
                rec.auto_approved = True
                rec.move("approved", now, "policy", f"auto-approved by rule {number} (risk {rule.risk})")
            else:
                allowed += 1
                rec.move("pending", now, "policy", f"rule {number}: {rule.approvals} approval(s) needed")
        records.append(rec)
    return records


def request_id(thread_id: str, records: list[ProposalRecord]) -> str:
    """Names one approval request: the thread and what it asks about (stable across a resumed node)."""
    body = thread_id + "|" + "|".join(f"{r.fingerprint}:{r.proposed_at}" for r in records)
    return hashlib.sha256(body.encode()).hexdigest()[:24]


class Refusal(BaseModel):
    """A decision, or part of one, that does not count; recorded in the audit log."""

    reason: str
    fingerprints: list[str] = Field(default_factory=list)


def apply_decision(
    records: list[ProposalRecord],
    decision: dict[str, Any],
    *,
    policy: Policy,
    requester: str | None,
    thread_id: str,
    current_request: str,
    now: datetime,
) -> list[Refusal]:
    """Apply one human decision to the pending proposals, in place; what did not count is returned.

    An approval counts only when: it is for this investigation (thread) and this request; the
    proposal is still pending and has not expired; the requester is known and is not the approver;
    a role the approver claims is one the policy (or their service token) gives them; the approver
    holds a role the rule asks for (if any); and they have not approved this proposal already.
    Enough approvals from different people make it approved. A rejection by a named person always counts.
    """
    approver = str(decision.get("approver") or "").strip()
    verdict = decision.get("decision")
    role = decision.get("role")
    pending = [r for r in records if r.state == "pending"]
    for r in pending:  # whatever the decision, time has passed
        if r.expired(now):
            r.move("expired", now, "opscopilot", f"not approved by {r.expires_at}")
    if decision.get("thread_id") and decision["thread_id"] != thread_id:
        return [
            Refusal(
                reason=f"the decision is for investigation {decision['thread_id']}, not this one: "
                "replayed from another thread"
            )
        ]
    if decision.get("request_id") and decision["request_id"] != current_request:
        return [Refusal(reason="the decision answers another approval request (stale or replayed)")]
    chosen = _chosen(records, decision)
    if isinstance(chosen, Refusal):
        return [chosen]
    refusals: list[Refusal] = []
    expired_asked = [r.fingerprint for r in chosen if r.state == "expired"]
    if expired_asked and verdict == "approve":
        refusals.append(
            Refusal(
                reason="approval for an expired proposal: it cannot be approved any more",
                fingerprints=expired_asked,
            )
        )
    targets = [r for r in chosen if r.state == "pending"]
    if verdict == "reject":
        for r in targets:
            r.move("rejected", now, approver, str(decision.get("comment") or ""))
        for r in pending:  # a decision naming some proposals rejects the others, as the gate does
            if r.state == "pending" and r not in targets:
                r.move("rejected", now, approver, "not among the proposals decided")
        return refusals
    authenticated = decision.get("authenticated_role")
    problem = approver_problem(approver, role, requester, policy, authenticated)
    if problem:
        return [*refusals, Refusal(reason=problem.reason, fingerprints=[r.fingerprint for r in targets])]
    held = policy.roles_of(approver, authenticated)
    for r in targets:
        lacking = missing_role(approver, r.approver_roles, held)
        if lacking:
            refusals.append(Refusal(reason=lacking, fingerprints=[r.fingerprint]))
            continue
        if any(normalize_person(a.approver) == normalize_person(approver) for a in r.approvals):
            refusals.append(
                Refusal(
                    reason=f"{approver} approved this proposal already: another person must approve",
                    fingerprints=[r.fingerprint],
                )
            )
            continue
        r.approvals.append(Approval(approver=approver, role=role, at=now.isoformat()))
        if len(r.approvals) >= r.approvals_required:
            names = ", ".join(a.approver for a in r.approvals)
            r.move("approved", now, approver, f"approved by {names}")
        else:
            r.move("pending", now, approver, f"approval {len(r.approvals)} of {r.approvals_required}")
    if decision.get("fingerprints") or decision.get("actions"):
        for r in pending:
            if r.state == "pending" and r not in targets:
                r.move("rejected", now, approver, "not among the proposals approved")
    return refusals


def _chosen(records: list[ProposalRecord], decision: dict[str, Any]) -> list[ProposalRecord] | Refusal:
    fingerprints = decision.get("fingerprints") or []
    if fingerprints:
        known = {r.fingerprint: r for r in records}
        unknown = [f for f in fingerprints if f not in known]
        if unknown:
            return Refusal(
                reason="the decision names proposals this investigation does not have (replayed from another "
                "investigation, or the proposal was changed): " + ", ".join(f[:12] for f in unknown),
            )
        return [known[f] for f in fingerprints]
    actions = set(decision.get("actions") or [])
    open_ = [r for r in records if r.state in ("pending", "expired")]
    return [r for r in open_ if not actions or r.action in actions]


class ApproverProblem(BaseModel):
    """Why this person's approval cannot count, whatever they approve. `kind` lets a caller pick its
    answer (the service: 422 for a blank name, 403 for the rest)."""

    kind: Literal["blank", "no_requester", "self", "forged_role"]
    reason: str


def approver_problem(
    approver: str,
    role: str | None,
    requester: str | None,
    policy: Policy,
    authenticated_role: str | None = None,
) -> ApproverProblem | None:
    """The rules about the person that every approval must pass: named, not the requester (who must be
    known), and a claimed role one the policy (or their service token) gives them. The graph applies
    them as the authority (:func:`apply_decision`); the service asks the same function first, to
    refuse early and say why."""
    if not approver.strip():
        return ApproverProblem(
            kind="blank", reason="an approval must name the approver (a blank name is refused)"
        )
    if not requester:
        return ApproverProblem(
            kind="no_requester",
            reason="the requester of this investigation is not recorded, so an approval by someone else "
            "cannot be proven",
        )
    if normalize_person(approver) == normalize_person(requester):
        return ApproverProblem(
            kind="self",
            reason=f"{approver} asked for this investigation (raised this proposal) and may not approve it: "
            "another person must",
        )
    held = policy.roles_of(approver, authenticated_role)
    if role and role not in held:
        return ApproverProblem(
            kind="forged_role",
            reason=f"{approver} claims role {role!r}, which the policy does not give them (their roles: "
            f"{', '.join(sorted(held)) or 'none'}): forged role",
        )
    return None


def missing_role(approver: str, needed: list[str], held: set[str]) -> str | None:
    """Why `approver` may not approve a proposal whose rule asks for one of `needed` (None: they may)."""
    if needed and not held & set(needed):
        return f"{approver} holds none of the roles this proposal needs ({', '.join(needed)})"
    return None
