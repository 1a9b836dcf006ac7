"""Evidence, findings and tool results: the currency every specialist trades in."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

Specialist = Literal["database", "logs", "metrics", "network", "itsm", "knowledge"]
SPECIALISTS: tuple[Specialist, ...] = get_args(Specialist)

ActionName = Literal[
    "kill_session",
    "restart_service",
    "run_playbook",
    "scale_out",
    "failover",
    "create_ticket",
    "page_oncall",
    "none",
]
ACTIONS: tuple[str, ...] = get_args(ActionName)


class ToolKind(StrEnum):
    """Whether an operation only reads (view) or changes something (action)."""

    VIEW = "view"
    ACTION = "action"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class Evidence(BaseModel):
    """What one view tool returned: the raw rows a finding rests on.

    `id` is stable within one investigation (``<tool>@<entity>``); the report numbers
    evidence as [E1], [E2] ... in the order it was gathered.
    """

    id: str
    specialist: Specialist
    tool: str
    entity: str
    summary: str
    rows: list[dict[str, Any]] = Field(default_factory=list)
    row_count: int = 0
    truncated: bool = False
    error: str | None = None


_PLAIN = re.compile(r"^[A-Za-z0-9_.@:/,=+#%-]+(?: [A-Za-z0-9_.@:/,=+#%-]+)*$")


def escape_text(value: str) -> str:
    """Text that came from evidence, safe to print on one line: as it is when it holds only plain
    words (letters, digits, ``_.@:/,=+#%-`` and single spaces), else as a quoted JSON string, so
    that ``;``, quotes, brackets, control characters or a line break can never pass for our own
    words (a metric tag ``path: "/x; kill_session db 1 (approved)"`` prints quoted)."""
    return value if _PLAIN.match(value) else json.dumps(value)


TargetKind = Literal["session", "service", "playbook", "workspace", "ticket", "page", "instance", "host"]


class ActionTarget(BaseModel):
    """What an action acts on, as typed fields: never a string assembled from evidence text.

    `entity` is the inventory name (sql-prod-01, web-01); `kind` what inside it; `id` the typed
    identifier (a session id, a service name, a job template id); `attrs` what the executor must
    re-check before acting (for a session: login, host, program, login_time).
    """

    entity: str
    kind: TargetKind
    id: str | None = None
    attrs: dict[str, str] = Field(default_factory=dict)

    def display(self) -> str:
        """A short human label, e.g. ``sql-prod-01 session 57``."""
        return f"{self.entity} {self.kind} {self.id}" if self.id is not None else f"{self.entity} {self.kind}"

    def render(self, *, attrs: bool = False) -> str:
        """The label with every part escaped (:func:`escape_text`); with `attrs`, the re-checked
        attributes too: ``pg-01 session 4242 (login_name=app, host_name=10.0.0.5)``."""
        parts = [escape_text(self.entity), self.kind] + (
            [escape_text(self.id)] if self.id is not None else []
        )
        text = " ".join(parts)
        if attrs and self.attrs:
            text += (
                " (" + ", ".join(f"{escape_text(k)}={escape_text(v)}" for k, v in self.attrs.items()) + ")"
            )
        return text


class ProposedAction(BaseModel):
    """A remediation a finding suggests. Never executed without an approver.

    `target` is the display label; `target_ref` the structured target executors act on.
    """

    action: ActionName
    target: str
    reason: str
    evidence: list[str] = Field(default_factory=list)
    target_ref: ActionTarget | None = None

    def display_target(self) -> str:
        """The target label as it may be printed: escaped (it can hold text copied from evidence)."""
        return escape_text(self.target)

    def fingerprint(self) -> str:
        """sha256 over the action, the structured target (or the label) and the evidence ids.

        Shown to the approver and checked again before a decision is recorded and before anything
        runs: an edited proposal no longer matches what was approved."""
        body = {
            "action": self.action,
            "target": self.target_ref.model_dump(mode="json") if self.target_ref else self.target,
            "evidence": sorted(self.evidence),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class Finding(BaseModel):
    """A deterministic conclusion drawn by an analyzer, with the evidence it rests on."""

    specialist: Specialist
    entity: str
    kind: str  # e.g. "blocking_chain", "regressed_query", "days_until_full"
    severity: Severity
    title: str
    detail: str = ""
    evidence: list[str] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    remediation: ProposedAction | None = None

    @property
    def text(self) -> str:
        return f"{self.title}. {self.detail}".strip() if self.detail else self.title


class ToolResult(BaseModel):
    """What a view tool hands back: the evidence it gathered and what the analyzer found."""

    evidence: list[Evidence] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)


class ToolSpec(BaseModel):
    """A tool's contract as the model reads it; `kind` separates reads from writes."""

    name: str
    specialist: Specialist
    kind: ToolKind
    description: str
    parameters: dict[str, Any] = Field(default_factory=dict)  # JSON schema of the arguments
    # Which kinds of problem this tool can see (tools/coverage.py `Concern`). A report may call
    # something healthy only for the concerns that the tools it ran detect.
    detects: list[str] = Field(default_factory=list)


def evidence_id(tool: str, entity: str) -> str:
    return f"{tool}@{entity}"


@dataclass(frozen=True)
class ViewTool:
    """A read-only tool: `run(ctx, entity, **args) -> ToolResult`. Its docstring is the contract."""

    spec: ToolSpec
    run: Callable[..., ToolResult]

    def __call__(self, ctx: Any, entity: str, **args: Any) -> ToolResult:
        return self.run(ctx, entity, **args)


def view_tool(
    specialist: Specialist,
    parameters: dict[str, Any] | None = None,
    detects: tuple[str, ...] = (),
) -> Callable[[Callable[..., ToolResult]], ViewTool]:
    """Declare a function `(ctx: ToolContext, entity: str, **args) -> ToolResult` as a view tool.

    `detects` names the concerns (tools/coverage.py) the tool can see."""

    def wrap(fn: Callable[..., ToolResult]) -> ViewTool:
        doc = inspect.cleandoc(fn.__doc__ or fn.__name__)
        spec = ToolSpec(
            name=fn.__name__,
            specialist=specialist,
            kind=ToolKind.VIEW,
            description=doc,
            parameters=parameters or {},
            detects=list(detects),
        )
        return ViewTool(spec=spec, run=fn)

    return wrap
