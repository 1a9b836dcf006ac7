"""What every executor shares: the request it gets, the result it reports, the steps it tried, and the
checks of a proposal's parameters against the evidence it rests on."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from tools.base import ActionTarget, Evidence, ProposedAction, escape_text

log = logging.getLogger(__name__)

Outcome = Literal["executed", "dry_run", "refused", "failed"]

SESSION_ID = re.compile(r"^[1-9][0-9]{0,9}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$")
HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
MAX_SESSION_ID = 2**31 - 1


class ActionRequest(BaseModel):
    """One approved proposal, handed to its executor with everything it may check it against."""

    key: str = Field(description="idempotency key: one per approved proposal (and mode)")
    thread_id: str
    proposal: ProposedAction
    evidence: list[Evidence] = Field(description="the evidence the proposal cites, as the tools returned it")
    observed_at: datetime = Field(description="when that evidence was read (the investigation's clock)")
    summary: str = Field(default="", description="the investigation's headline")
    findings: list[str] = Field(default_factory=list, description="the findings, most severe first")
    severity: str = "warning"
    approvers: list[str] = Field(default_factory=list)
    dry_run: bool = True

    @property
    def target(self) -> ActionTarget:
        if self.proposal.target_ref is None:
            raise Refused(
                f"the proposal {self.proposal.action} {self.proposal.display_target()} has no structured "
                "target: an executor acts only on typed targets, never on a label"
            )
        return self.proposal.target_ref


class ExecutionResult(BaseModel):
    """What an executor did (or would do, in a dry run), and every step it tried."""

    outcome: Outcome
    action: str
    target: str = Field(description="the target, rendered escaped")
    detail: str
    tried: list[str] = Field(default_factory=list)
    external_id: str | None = Field(default=None, description="job id, run id, ticket number, dedup key")
    external_url: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0
    reconciled: bool = Field(default=False, description="found after an attempt that did not record it")
    replayed: bool = Field(default=False, description="already in the ledger: nothing ran again")


class Refused(Exception):
    """The parameters do not pass the checks (against the evidence, the live target, the settings)."""


class Failed(Exception):
    """The executor tried and the target system did not do it (or could not be reached). `extra`:
    fields of the result that are known anyway (the job or run id that failed)."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.extra = extra


class Trail:
    """The steps an executor tried, in order, for the result and the audit log."""

    def __init__(self) -> None:
        self.steps: list[str] = []

    def add(self, step: str) -> None:
        log.info("action step: %s", step)
        self.steps.append(step)


class Executor(Protocol):
    """Runs one kind of action. `execute` never raises: refusals and failures are results."""

    actions: tuple[str, ...]

    def execute(self, request: ActionRequest) -> ExecutionResult: ...

    def reconcile(self, request: ActionRequest) -> ExecutionResult | None:
        """After an attempt that did not record its result (the process died): what that attempt did,
        or None when it had no effect (then running it is safe). Raises Failed when it cannot tell."""
        ...


Done = tuple[Outcome, str, dict[str, Any]]  # outcome, detail, fields of ExecutionResult


def run_guarded(request: ActionRequest, work: Callable[[Trail], Done]) -> ExecutionResult:
    """Run `work` and turn whatever happens into a result that says what was tried."""
    trail = Trail()
    started = time.monotonic()
    target = (
        request.proposal.target_ref.render()
        if request.proposal.target_ref
        else escape_text(request.proposal.target)
    )
    try:
        outcome, detail, extra = work(trail)
    except Refused as exc:
        outcome, detail, extra = "refused", str(exc), {}
    except Failed as exc:
        outcome, detail, extra = "failed", str(exc), exc.extra
    except Exception as exc:  # an executor bug must still leave a result and an audit entry
        log.exception("%s on %s failed unexpectedly", request.proposal.action, target)
        outcome, detail, extra = "failed", f"unexpected error: {type(exc).__name__}: {exc}", {}
    return ExecutionResult(
        outcome=outcome,
        action=request.proposal.action,
        target=target,
        detail=detail,
        tried=trail.steps,
        seconds=round(time.monotonic() - started, 3),
        **extra,
    )


# --- typed parameters ------------------------------------------------------------------------------


def session_id(target: ActionTarget) -> int:
    """The target's session id as an int; anything but a plain positive number is refused."""
    if target.kind != "session":
        raise Refused(f"kill_session needs a session target, got a {target.kind} target")
    raw = target.id or ""
    if not SESSION_ID.match(raw) or int(raw) > MAX_SESSION_ID:
        raise Refused(
            f"session id {escape_text(raw)} is not a whole number between 1 and {MAX_SESSION_ID}: refused "
            "(a target is a typed id, never text)"
        )
    return int(raw)


def plain_name(value: str | None, what: str) -> str:
    """A service, playbook or workspace name: letters, digits and ``_.@:-`` only."""
    if value is None or not NAME.match(value):
        raise Refused(
            f"{what} {escape_text(value or '')} is not a plain name (letters, digits, _.@:- ; at most 128): "
            "refused"
        )
    return value


def host_name(value: str) -> str:
    """An inventory host name, usable as an Ansible limit: no patterns, no lists."""
    if not HOST.match(value):
        raise Refused(f"host {escape_text(value)} is not a plain host name: refused")
    return value


def check_evidence(request: ActionRequest) -> None:
    """The proposal must cite evidence this investigation holds, and its target must be an entity
    that evidence is about."""
    have = {e.id: e for e in request.evidence}
    cited = request.proposal.evidence
    missing = [e for e in cited if e not in have]
    if not cited or missing:
        raise Refused(
            "the proposal cites evidence this investigation does not hold: "
            + (", ".join(escape_text(m) for m in missing) or "none cited")
        )
    entity = request.target.entity
    entities = {have[e].entity for e in cited}
    if entity not in entities:
        raise Refused(
            f"the target {escape_text(entity)} is not what the cited evidence is about "
            f"({', '.join(sorted(escape_text(e) for e in entities))})"
        )
