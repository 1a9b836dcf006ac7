"""The executor of a replayed scenario: its estate is a recording, so nothing real may be acted on.

It checks a proposal's parameters as the live executors do (typed target, evidence this investigation
holds, for kill_session a session the cited evidence names) and reports what would have run: always a
dry run. An instance of the live estate that happens to share a name with the recording is never
touched.
"""

from __future__ import annotations

from tools.actions.base import (
    ActionRequest,
    Done,
    ExecutionResult,
    Refused,
    Trail,
    check_evidence,
    run_guarded,
    session_id,
)
from tools.base import ACTIONS, escape_text


class RecordedWorld:
    """Rehearses every action against the recorded evidence of a replayed scenario."""

    actions = tuple(a for a in ACTIONS if a != "none")

    def execute(self, request: ActionRequest) -> ExecutionResult:
        return run_guarded(request, lambda trail: self._rehearse(request, trail))

    def reconcile(self, request: ActionRequest) -> ExecutionResult | None:
        return None  # a rehearsal has no effect: running it again is safe

    def _rehearse(self, request: ActionRequest, trail: Trail) -> Done:
        target = request.target
        check_evidence(request)
        trail.add("checked the target against the evidence this investigation holds")
        if request.proposal.action == "kill_session":
            sid = session_id(target)
            held = {
                str(row.get("session_id"))
                for e in request.evidence
                if e.entity == target.entity
                for row in e.rows
            }
            if str(sid) not in held:
                raise Refused(
                    f"session {sid} is not among the sessions the cited evidence holds for "
                    f"{escape_text(target.entity)}: refused"
                )
            trail.add(f"session {sid} is the one the recorded evidence names")
        return (
            "dry_run",
            f"dry run on a replayed scenario: {request.proposal.action} {target.render()} passed its checks "
            "against the recorded evidence and would run on a live system; nothing real was touched",
            {},
        )
