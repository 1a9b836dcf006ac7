"""Approvals in the store, and deciding on them: the one path from a decision to a verified outcome.

The HTTP approval API, the AG-UI chat resume, the CLI and the console all come here. A decision is
checked early (who may decide: the same rules the graph applies, from graphs/proposals.py, so a
refusal is immediate and says why; every refusal is written to the audit log), recorded on the
approval row, and the paused graph is resumed with the full `ApprovalDecision`: check_approval ->
execute_actions -> verify_outcomes. What the graph recorded (each proposal's state, the execution's
result, the verification) is stored back on the approval and the investigation. The expiry sweep
goes through the graph too, so an expired proposal is on the record like any other decision.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from graphs.approval import combined_fingerprint, proposal_fingerprints
from graphs.proposals import approver_problem, missing_role
from graphs.state import ApprovalDecision
from server import runtime
from server.events import ApprovalRequired, Clock, Event, RunDone, RunStarted, stream_events
from server.principals import Principal
from server.store import iso_in, new_id, utcnow
from server.views import approval_request_view, approval_status, proposals_with_outcomes

if TYPE_CHECKING:
    from server.investigations import Investigations

log = logging.getLogger(__name__)

SWEEPER = "opscopilot"  # the actor of an expiry


class DecisionRefused(Exception):
    """A decision that may not be recorded; `status` is the HTTP status that fits (403, 404, 409, 422)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def open_approval(
    svc: Investigations, conn: Any, inv_id: str, values: dict[str, Any], interrupt_id: str
) -> str:
    """Store the pending approval; an identical pending proposal (same fingerprint) is superseded. It
    expires when its first pending proposal does (the policy's `expires_after`, at most the service's
    `approval_ttl_minutes`)."""
    store = svc.store
    row = store.get_investigation(inv_id, conn) or {}
    proposals = proposals_with_outcomes(values)
    fingerprint = combined_fingerprint([p["fingerprint"] for p in proposals])
    for old in store.pending_with_fingerprint(conn, fingerprint):
        store.set_approval(old["id"], conn, status="superseded", outcome=f"superseded by {inv_id}")
        store.update_investigation(old["investigation_id"], conn, status="superseded")
    return store.add_approval(
        conn,
        id=new_id("apr"),
        investigation_id=inv_id,
        proposals=proposals,
        fingerprint=fingerprint,
        summary=(values.get("report") or {}).get("headline", ""),
        requester=row.get("requester", ""),
        origin=row.get("origin", "replay"),
        interrupt_id=interrupt_id,
        expires_at=_expires_at(proposals, svc.settings.service.approval_ttl_minutes),
    )


def record_auto_approval(svc: Investigations, conn: Any, inv_id: str, values: dict[str, Any]) -> str | None:
    """An investigation whose proposals the policy approved by itself (an explicit low-risk rule) did not
    pause; its approval row says so: approved by `policy`, with what then happened."""
    proposals = proposals_with_outcomes(values)
    if not any((p.get("policy") or {}).get("auto_approved") for p in proposals):
        return None
    row = svc.store.get_investigation(inv_id, conn) or {}
    now = utcnow()
    return svc.store.add_approval(
        conn,
        id=new_id("apr"),
        investigation_id=inv_id,
        status="approved",
        proposals=proposals,
        fingerprint=combined_fingerprint([p["fingerprint"] for p in proposals]),
        summary=(values.get("report") or {}).get("headline", ""),
        requester=row.get("requester", ""),
        origin=row.get("origin", "replay"),
        expires_at=now,
        decided_by="policy",
        decided_at=now,
        comment="auto-approved by a low-risk policy rule",
        outcome=(values.get("approval") or {}).get("outcome", ""),
    )


def _expires_at(proposals: list[dict[str, Any]], ttl_minutes: float) -> str:
    waiting = [
        str(p["policy"]["expires_at"])
        for p in proposals
        if (p.get("policy") or {}).get("state") == "pending" and p["policy"].get("expires_at")
    ]
    return min(waiting) if waiting else iso_in(ttl_minutes)


class Decisions:
    """Decide, record, resume, expire: the decision half of the lifecycle service `svc`."""

    def __init__(self, svc: Investigations) -> None:
        self.svc = svc

    @property
    def store(self) -> Any:
        return self.svc.store

    # --- who may decide --------------------------------------------------------------------------

    def decidable(
        self,
        approval_id: str,
        by: Principal,
        fingerprint_shown: str | None,
        role: str | None = None,
        decision: str = "approve",
    ) -> dict[str, Any]:
        """The approval, when `by` may decide on it now; else DecisionRefused (written to the audit log).

        The rules about the person are the graph's own (graphs/proposals.py `approver_problem`,
        `missing_role`): asked here first so that the answer is immediate; the graph checks them
        again when it resumes, as the authority."""
        approval = self.store.get_approval(approval_id)
        if approval is None:
            raise DecisionRefused(f"no approval {approval_id}", 404)
        if not by.can("approver"):
            self.refuse(approval, by, f"{by.name} has role {by.role}; deciding needs approver or admin", 403)
        if approval["status"] == "pending" and approval["expires_at"] <= utcnow():
            self.expire_due()
            approval = self.store.get_approval(approval_id) or approval
        if approval["status"] != "pending":
            why = f"approval {approval_id} is {approval['status']}, not pending"
            if approval["status"] == "expired":
                why += f": an approval for an expired proposal (it expired at {approval['expires_at'][:19]})"
            self.refuse(approval, by, why, 409)
        policy = self.svc.actions().policy
        problem = approver_problem(by.name, role, approval["requester"], policy, by.authenticated_role)
        if problem is not None:
            self.refuse(approval, by, problem.reason, 422 if problem.kind == "blank" else 403)
        if decision == "approve":
            held = policy.roles_of(by.name, by.authenticated_role)
            for p in approval["proposals"]:
                rule = p.get("policy") or {}
                lacking = missing_role(by.name, list(rule.get("approver_roles") or []), held)
                if lacking and rule.get("state") == "pending":
                    self.refuse(approval, by, lacking, 403)
        if fingerprint_shown and fingerprint_shown != approval["fingerprint"]:
            self.refuse(approval, by, "the fingerprint you were shown does not match this approval's", 409)
        return approval

    def refuse(self, approval: dict[str, Any], by: Principal, reason: str, status: int) -> NoReturn:
        """Write the refused decision to the audit log, then refuse it."""
        inv_id = approval["investigation_id"]
        try:
            self.svc.actions().audit.append(
                thread_id=inv_id,
                kind="decision_refused",
                actor=by.name.strip() or "?",
                subject=approval["fingerprint"],
                event_key=f"{inv_id}:service:refused:{uuid.uuid4().hex}",
                data={"reason": reason, "approval": approval["id"], "status": status, "via": by.via},
            )
        except Exception:  # the refusal stands even if the audit log cannot be written
            log.exception("could not audit a refused decision on %s", approval["id"])
        raise DecisionRefused(reason, status)

    # --- record and resume -----------------------------------------------------------------------

    def record(
        self,
        approval: dict[str, Any],
        decision: Literal["approve", "reject"],
        by: Principal,
        comment: str,
        role: str | None = None,
    ) -> ApprovalDecision:
        """Check the paused state still holds exactly the proposals shown, then record the decision."""
        approval_id = approval["id"]
        inv_id = approval["investigation_id"]
        snap = self.svc.graph.get_state({"configurable": {"thread_id": inv_id}})
        if not snap.interrupts:
            self.refuse(approval, by, f"investigation {inv_id} is not paused at the approval gate", 409)
        values = snap.values or {}
        live_prints = proposal_fingerprints(list(values.get("proposals", [])))
        if live_prints != [p.get("fingerprint") for p in approval["proposals"]]:
            with self.store.tx() as conn:
                self.store.set_approval(
                    approval_id,
                    conn,
                    status="invalid",
                    outcome="checkpoint proposals differ from the request",
                )
            self.refuse(
                approval,
                by,
                "the paused investigation's proposals no longer match what was proposed "
                "(fingerprint mismatch): the approval is void and nothing will run",
                409,
            )
        payload = ApprovalDecision(
            decision=decision,
            approver=by.name,
            comment=comment,
            fingerprints=live_prints,
            role=role,
            authenticated_role=by.authenticated_role,
            requester=approval["requester"],
            thread_id=inv_id,
            request_id=values.get("approval_request_id") or None,
            decided_at=utcnow(),
        )
        from tools.owners import owner_id

        with self.store.tx() as conn:
            recorded = self.store.set_approval(
                approval_id,
                conn,
                status=approval_status(decision),
                decided_by=by.name,
                decided_at=payload.decided_at,
                comment=comment,
                decision=payload.model_dump(mode="json"),
            )
            if recorded:  # this process now carries the decision through (finish_interrupted if it dies)
                self.store.update_investigation(
                    inv_id, conn, status="executing", owner=owner_id(), heartbeat_at=time.time()
                )
        if not recorded:
            self.refuse(approval, by, f"approval {approval_id} was decided by someone else meanwhile", 409)
        return payload

    def resume(
        self, approval: dict[str, Any], payload: ApprovalDecision, clock: Clock, again: bool = False
    ) -> Iterator[Event]:
        """Resume the paused graph with the recorded decision; store what it did. The graph checks the
        decision again (check_approval), runs what it approves once (execute_actions) and verifies it
        (verify_outcomes). A decision that does not complete the approval (a quorum not reached yet, a
        refusal) leaves the approval pending; `RunDone.refused` says why. `again`: a run of this
        decision lost its process; go on from the graph's last checkpoint (the ledger makes sure that
        nothing it already ran runs twice)."""
        from langgraph.types import Command

        svc = self.svc
        approval_id = approval["id"]
        inv_id = approval["investigation_id"]
        config = {"configurable": {"thread_id": inv_id}}
        row = self.store.get_investigation(inv_id) or {}
        source_ref = row.get("source_ref", "live")
        context = svc.context(source_ref, runtime.open_model(svc.settings, "none"))
        yield clock(RunStarted(investigation_id=inv_id, kind="decision", sources=source_ref))
        resume: Any = Command(resume=payload.model_dump(mode="json"))
        if again and not svc.graph.get_state(config).interrupts:
            resume = None  # the decision was taken in: continue where the lost run stopped
        beat = time.time()
        for ev in stream_events(svc.graph, resume, config, context, clock):
            if time.time() - beat > 5:
                self.store.update_investigation(inv_id, heartbeat_at=time.time())
                beat = time.time()
            if not isinstance(ev.body, ApprovalRequired):  # announced below, with the approval's id
                yield ev
        snap = svc.graph.get_state(config)
        values = snap.values or {}
        gate = values.get("approval") or {}
        outcome, refused = str(gate.get("outcome", "")), [str(r) for r in gate.get("refused") or []]
        paused = bool(snap.interrupts)
        if paused:
            status, inv_status = "pending", "awaiting_approval"
        elif values.get("status") == "expired":
            status = inv_status = "expired"
        else:
            status = inv_status = approval_status(payload.decision)
        fields: dict[str, Any] = {
            "status": status,
            "outcome": outcome,
            "proposals": proposals_with_outcomes(values),
        }
        if paused:  # waits for another decision: who decided so far is on each proposal's policy view
            fields.update(decided_by=None, decided_at=None, interrupt_id=snap.interrupts[0].id)
        with self.store.tx() as conn:
            self.store.update_investigation(
                inv_id, conn, status=inv_status, proposals=values.get("proposals", []), owner=None
            )
            self.store.set_approval(approval_id, conn, expect=approval_status(payload.decision), **fields)
        if paused:
            fresh = self.store.get_approval(approval_id) or {}
            yield clock(
                ApprovalRequired(
                    request=approval_request_view(fresh),
                    interrupt_id=fresh.get("interrupt_id") or "",
                    approval_id=approval_id,
                    expires_at=fresh.get("expires_at"),
                )
            )
        yield clock(
            RunDone(
                investigation_id=inv_id,
                status=inv_status,
                headline=outcome,
                answer=outcome,
                decision=payload.decision,
                pending_approval=paused,
                approval_id=approval_id,
                refused=refused,
            )
        )

    def finish_interrupted(self) -> int:
        """Carry on decisions whose run lost its process (a crash, a kill -9 between the decision and
        the outcome): the investigation is `executing`, its owner is gone (or silent for longer than
        the ledger's lease), and the approval has a decision but no outcome. Returns how many."""
        from tools.owners import owner_alive, owner_id

        lease = self.svc.actions().lease.total_seconds()
        n = 0
        for approval in self.store.unfinished_decisions():
            row = self.store.get_investigation(approval["investigation_id"]) or {}
            if row.get("status") != "executing":
                continue
            alive = owner_alive(row.get("owner"))
            silent = (row.get("heartbeat_at") or 0) < time.time() - lease
            if alive is True or (alive is None and not silent):
                continue
            if not self.store.take_over(row["id"], row.get("owner"), owner_id()):
                continue
            log.warning(
                "carrying on the decision on %s: its process ended before the outcome", approval["id"]
            )
            payload = ApprovalDecision.model_validate(approval["decision"])
            for _ in self.svc._published(row["id"], self.resume(approval, payload, Clock(), again=True)):
                pass
            n += 1
        return n

    # --- expiry ----------------------------------------------------------------------------------

    def expire_due(self) -> int:
        """Expire pending approvals past their time: the approval row first (so that no decision can
        still be recorded), then the graph is resumed so that it records each proposal as expired (in
        its state and the audit log). Their investigations become `expired`."""
        now = utcnow()
        n = 0
        for approval in self.store.due_approvals(now):
            with self.store.tx() as conn:
                claimed = self.store.set_approval(
                    approval["id"], conn, status="expired", decided_at=now, outcome="expired"
                )
                if claimed:
                    self.store.update_investigation(approval["investigation_id"], conn, status="expired")
            if not claimed:
                continue
            n += 1
            try:
                self._expire_in_graph(approval)
            except Exception:  # the approval is expired either way; the graph keeps its pause
                log.exception("could not record the expiry of %s in its investigation", approval["id"])
        return n

    def _expire_in_graph(self, approval: dict[str, Any]) -> None:
        inv_id = approval["investigation_id"]
        config = {"configurable": {"thread_id": inv_id}}
        snap = self.svc.graph.get_state(config)
        if not snap.interrupts:
            return
        from langgraph.types import Command

        decision = ApprovalDecision(
            decision="reject",
            approver=SWEEPER,
            comment=f"expired: not decided by {approval['expires_at'][:19]}",
            requester=approval["requester"],
            thread_id=inv_id,
            request_id=(snap.values or {}).get("approval_request_id") or None,
            decided_at=utcnow(),
        )
        row = self.store.get_investigation(inv_id) or {}
        context = self.svc.context(
            row.get("source_ref", "live"), runtime.open_model(self.svc.settings, "none")
        )
        for _ in stream_events(
            self.svc.graph, Command(resume=decision.model_dump(mode="json")), config, context
        ):
            pass
        values = self.svc.graph.get_state(config).values or {}
        outcome = str((values.get("approval") or {}).get("outcome") or "expired")
        with self.store.tx() as conn:
            self.store.set_approval(
                approval["id"],
                conn,
                expect="expired",
                outcome=outcome,
                proposals=proposals_with_outcomes(values),
            )
