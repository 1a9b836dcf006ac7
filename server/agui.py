"""Our events on the AG-UI wire: RUN_*, STEP_*, TOOL_CALL_*, TEXT_MESSAGE_*, STATE_SNAPSHOT, CUSTOM.

One translator per run keeps the ids that pair start and end events (a tool call's id, the
explanation message's id). Findings, evidence and citations travel as typed CUSTOM events
(``opscopilot.report``) and in the final STATE_SNAPSHOT; an approved action's lifecycle as CUSTOM
``opscopilot.action_approved`` / ``action_rejected`` / ``action_refused`` / ``action_executing`` /
``action_executed`` / ``action_verified``; an approval pause ends the run with an
interrupt outcome that carries the approval request.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    Interrupt,
    RunErrorEvent,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    StateSnapshotEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)

from agents.events import FollowUpAsked, ToolFinished, ToolStarted
from graphs.events import (
    ACTION_EVENTS,
    AnswerReady,
    Explaining,
    ModelToken,
    PlanMade,
    SpecialistFinished,
    SpecialistStarted,
)
from graphs.state import ApprovalDecision
from server.events import ApprovalRequired, Event, RunDone, RunFailed, RunStarted

CUSTOM_PREFIX = "opscopilot."
DECISION_SCHEMA = {
    "type": "object",
    "required": ["decision"],
    "properties": {
        "decision": {"enum": ["approve", "reject"]},
        "comment": {"type": "string"},
        "fingerprint": {"type": "string", "description": "the approval fingerprint you reviewed"},
    },
}


def _id() -> str:
    return uuid.uuid4().hex[:16]


class Translator:
    """Maps one run's Events to AG-UI events, in order."""

    def __init__(self, thread_id: str, run_id: str) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self.tool_ids: dict[tuple[str, str, str], str] = {}
        self.explanation_id: str | None = None
        self.interrupts: list[Interrupt] = []
        self.investigation_id: str | None = None

    def started(self) -> RunStartedEvent:
        return RunStartedEvent(thread_id=self.thread_id, run_id=self.run_id)

    def __call__(self, ev: Event) -> list[BaseEvent]:
        d = ev.body
        if isinstance(d, RunStarted):
            self.investigation_id = d.investigation_id
            out: list[BaseEvent] = [
                CustomEvent(name=CUSTOM_PREFIX + "investigation", value=d.model_dump(mode="json"))
            ]
            if d.kind != "decision":  # a resumed decision does not plan again
                out.append(StepStartedEvent(step_name="plan"))
            return out
        if isinstance(d, PlanMade):
            return [
                CustomEvent(name=CUSTOM_PREFIX + "plan", value=d.model_dump(mode="json")),
                StepFinishedEvent(step_name="plan"),
            ]
        if isinstance(d, SpecialistStarted):
            return [StepStartedEvent(step_name=d.specialist)]
        if isinstance(d, SpecialistFinished):
            return [StepFinishedEvent(step_name=d.specialist)]
        if isinstance(d, FollowUpAsked) and d.tool is None:  # model-free: the specialist's playbook follows
            return [CustomEvent(name=CUSTOM_PREFIX + "follow_up", value=d.model_dump(mode="json"))]
        if isinstance(d, ToolStarted | FollowUpAsked):
            assert d.tool is not None
            key = (d.specialist, d.tool, d.entity)
            if key in self.tool_ids:
                return []
            call_id = self.tool_ids[key] = _id()
            return [
                ToolCallStartEvent(tool_call_id=call_id, tool_call_name=d.tool),
                ToolCallArgsEvent(
                    tool_call_id=call_id, delta=json.dumps({"entity": d.entity, "specialist": d.specialist})
                ),
                ToolCallEndEvent(tool_call_id=call_id),
            ]
        if isinstance(d, ToolFinished):
            call_id = self.tool_ids.pop((d.specialist, d.tool, d.entity), "") or _id()
            content = {"findings": d.findings, "seconds": d.seconds, "error": d.error}
            return [
                ToolCallResultEvent(
                    message_id=_id(), tool_call_id=call_id, content=json.dumps(content), role="tool"
                )
            ]
        if isinstance(d, Explaining):
            self.explanation_id = _id()
            return [TextMessageStartEvent(message_id=self.explanation_id, role="assistant")]
        if isinstance(d, ModelToken):
            if self.explanation_id is None or not d.text:
                return []
            return [TextMessageContentEvent(message_id=self.explanation_id, delta=d.text)]
        if isinstance(d, AnswerReady):
            out = []
            if self.explanation_id is not None:
                out.append(TextMessageEndEvent(message_id=self.explanation_id))
                self.explanation_id = None
            msg = _id()
            out += [
                TextMessageStartEvent(message_id=msg, role="assistant"),
                TextMessageContentEvent(message_id=msg, delta=d.text or "(no answer)"),
                TextMessageEndEvent(message_id=msg),
            ]
            return out
        if isinstance(d, ACTION_EVENTS):  # opscopilot.action_approved, .action_executed, ...
            return [CustomEvent(name=CUSTOM_PREFIX + d.event, value=d.model_dump(mode="json"))]
        if isinstance(d, ApprovalRequired):
            req = d.request
            self.interrupts.append(
                Interrupt(
                    id=d.approval_id or d.interrupt_id,
                    reason="approval_required",
                    message=req.get("summary") or "a remediation awaits approval",
                    response_schema=DECISION_SCHEMA,
                    expires_at=d.expires_at,
                    metadata={"approval": req},
                )
            )
            return [CustomEvent(name=CUSTOM_PREFIX + "approval_required", value=req)]
        if isinstance(d, RunDone):
            return self._done(d)
        if isinstance(d, RunFailed):
            return [RunErrorEvent(message=d.message, code=d.code)]
        return []

    def _done(self, d: RunDone) -> list[BaseEvent]:
        report = d.report or {}
        state = {
            "investigation_id": d.investigation_id,
            "status": d.status,
            "headline": d.headline,
            "findings": report.get("findings", []),
            "evidence": report.get("evidence", []),
            "citations": report.get("citations", []),
            "proposals": report.get("proposals", []),
            "notes": report.get("notes", []),
            "explanation": report.get("explanation"),
            "pictures": report.get("pictures", []),
            "evidence_rows": report.get("evidence_rows", {}),
        }
        out: list[BaseEvent] = []
        if report:
            out.append(CustomEvent(name=CUSTOM_PREFIX + "report", value=state))
        out.append(StateSnapshotEvent(snapshot=state))
        outcome: Any = (
            RunFinishedInterruptOutcome(type="interrupt", interrupts=self.interrupts)
            if self.interrupts
            else RunFinishedSuccessOutcome(type="success")
        )
        out.append(
            RunFinishedEvent(
                thread_id=self.thread_id,
                run_id=self.run_id,
                result={"investigation_id": d.investigation_id, "status": d.status},
                outcome=outcome,
            )
        )
        return out


def decision_from_resume(payload: Any, status: str) -> tuple[Literal["approve", "reject"], str, str | None]:
    """(decision, comment, fingerprint) from an AG-UI ResumeEntry; a cancelled entry rejects."""
    data = payload if isinstance(payload, dict) else {}
    decision = "reject" if status == "cancelled" else str(data.get("decision", ""))
    checked = ApprovalDecision.model_validate({"decision": decision, "approver": "x"})  # validates the word
    return checked.decision, str(data.get("comment", "")), data.get("fingerprint")
