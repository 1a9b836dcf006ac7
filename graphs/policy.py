"""The remediation policy: which actions may run on which entities, who must approve, how long a
proposal waits, and whether an action really runs or only rehearses (dry run).

Read from YAML (config/policy.yaml) and validated like the settings: an unknown key or a bad value
is an error naming the key, the value, the file line and what is allowed. Rules are tried in order;
the first whose action, entities and alerts match a proposal decides. A proposal no rule matches is
not allowed. Without a policy file, :func:`default_policy` allows every action after one approval,
as a dry run.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from tools.base import ACTIONS, ActionName, ProposedAction

Risk = Literal["low", "medium", "high"]
# The service's token roles that may decide, as policy roles: whoever the service authenticated with an
# `approver` token holds the policy role `approver`; an `admin` token holds `approver` and `admin`.
SERVICE_ROLES: dict[str, frozenset[str]] = {
    "approver": frozenset({"approver"}),
    "admin": frozenset({"approver", "admin"}),
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(value: Any) -> Any:
    """``90``, ``"90s"``, ``"15m"``, ``"2h"`` or ``"1d"`` -> seconds (int)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
    if not m:
        raise ValueError("a duration: a number of seconds, or e.g. 90s, 15m, 2h, 1d")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


Duration = Annotated[float, BeforeValidator(_seconds), Field(ge=0, le=30 * 86400)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rule(_Strict):
    """Which proposals this rule covers, and how they are approved and run."""

    action: ActionName = Field(description="the action this rule covers")
    entities: list[str] = Field(default_factory=lambda: ["*"], description="entity name patterns (fnmatch)")
    alerts: list[str] | None = Field(
        default=None,
        description="alert name patterns; null = any investigation, a list = only those an alert started",
    )
    risk: Risk = "high"
    approvals: int = Field(
        default=1, ge=1, le=5, description="distinct approvers, none of them the requester"
    )
    approver_roles: list[str] = Field(
        default_factory=list,
        description="an approver must hold one of these roles (under `roles`, or the service's token roles "
        "approver / admin); empty = anyone named",
    )
    auto_approve: bool = Field(default=False, description="approved by this rule without a human (low risk)")
    dry_run: bool = Field(default=True, description="rehearse only (checks, no change) until set to false")
    cooldown: Duration = Field(default=900, description="no second run on the same entity within this time")
    max_targets: int = Field(
        default=1,
        ge=1,
        le=100,
        description="blast radius: at most this many proposals of it per investigation",
    )
    expires_after: Duration = Field(default=3600, description="a proposal not approved by then expires")
    verify_after: Duration = Field(default=10, description="wait this long, then re-run the view tool")
    verify_for: Duration = Field(default=60, description="re-check until resolved or this long has passed")

    @model_validator(mode="after")
    def _auto_only_low(self) -> Rule:
        if self.action == "none":
            raise ValueError("action none needs no rule")
        if self.auto_approve and self.risk != "low":
            raise ValueError(f"auto_approve is allowed only for risk low (this rule's risk is {self.risk})")
        return self

    def covers(self, proposal: ProposedAction, alert_name: str | None) -> bool:
        entity = proposal.target_ref.entity if proposal.target_ref else proposal.target
        if proposal.action != self.action:
            return False
        if not any(fnmatch.fnmatchcase(entity, p) for p in self.entities):
            return False
        if self.alerts is None:
            return True
        return alert_name is not None and any(fnmatch.fnmatchcase(alert_name, p) for p in self.alerts)


class Policy(_Strict):
    """The whole policy: roles (who holds which), the rules, and a limit per investigation."""

    version: Literal[1] = 1
    roles: dict[str, list[str]] = Field(
        default_factory=dict,
        description="role -> the people who hold it (as they name themselves to approve); the service's "
        "token roles approver and admin need no entry",
    )
    max_actions: int = Field(default=5, ge=1, le=100, description="blast radius: actions per investigation")
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_roles(self) -> Policy:
        for i, rule in enumerate(self.rules):
            unknown = [r for r in rule.approver_roles if r not in self.roles and r not in SERVICE_ROLES]
            if unknown:
                raise ValueError(
                    f"rules[{i}].approver_roles names roles not under `roles` (nor a service role "
                    f"{' / '.join(SERVICE_ROLES)}): {unknown}"
                )
        return self

    def rule_for(self, proposal: ProposedAction, alert_name: str | None) -> tuple[int, Rule] | None:
        """The first rule covering the proposal (its index and the rule), or None: not allowed."""
        for i, rule in enumerate(self.rules):
            if rule.covers(proposal, alert_name):
                return i, rule
        return None

    def roles_of(self, person: str, authenticated_role: str | None = None) -> set[str]:
        """The policy roles `person` holds: those `roles` lists them under, and the ones their
        service token gives them (`authenticated_role`, verified by the service, never claimed)."""
        who = normalize_person(person)
        named = {role for role, people in self.roles.items() if who in {normalize_person(p) for p in people}}
        return named | set(SERVICE_ROLES.get(authenticated_role or "", ()))


def normalize_person(name: str) -> str:
    return " ".join(name.split()).casefold()


def default_policy() -> Policy:
    """Every action allowed after one approval by anyone but the requester, and only as a dry run."""
    return Policy(rules=[Rule(action=a) for a in ACTIONS if a != "none"])  # type: ignore[arg-type]


def expiry(rule: Rule) -> timedelta:
    return timedelta(seconds=rule.expires_after)


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file, line, key, value and what is allowed."""


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; PolicyError with a readable message."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path} line {mark.line + 1}" if mark else str(path)
        raise PolicyError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: a policy is a mapping with keys {', '.join(Policy.model_fields)}")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError("\n".join(_explain(e, path, root) for e in exc.errors())) from None


def _explain(err: Any, path: Path, root: yaml.Node | None) -> str:
    loc = tuple(err["loc"])
    key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    line = _line(root, loc)
    where = f"{path} line {line}" if line else str(path)
    if err["type"] == "extra_forbidden":
        parent = Rule if "rules" in loc else Policy
        return f"{where}: unknown key {key}; allowed here: {', '.join(parent.model_fields)}"
    value = err.get("input")
    shown = (
        "(missing)"
        if err["type"] == "missing"
        else (repr(value) if not isinstance(value, dict | list) else f"(a {type(value).__name__})")
    )
    allowed = _allowed(loc)
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {key or 'policy'} = {shown}: {msg}" + (f"; allowed: {allowed}" if allowed else "")


def _allowed(loc: tuple[Any, ...]) -> str:
    name = str(loc[-1]) if loc else ""
    model: type[BaseModel] = Rule if "rules" in loc and name in Rule.model_fields else Policy
    info = model.model_fields.get(name)
    if info is None:
        return ""
    if name == "action":
        return ", ".join(a for a in ACTIONS if a != "none")
    if name == "risk":
        return "low, medium, high"
    if name in ("cooldown", "expires_after", "verify_after", "verify_for"):
        return "seconds, or 90s / 15m / 2h / 1d (at most 30d)"
    bounds = [
        f"{sign} {getattr(m, attr)}"
        for m in info.metadata
        for attr, sign in (("ge", ">="), ("le", "<="))
        if hasattr(m, attr)
    ]
    names: dict[Any, str] = {bool: "true or false", int: "a whole number"}
    kind = names.get(info.annotation, "")
    if str(info.annotation).startswith("list"):
        kind = "a list"
    parts = [p for p in (kind, " and ".join(bounds)) if p]
    return ", ".join(parts) + (f": {info.description}" if info.description else "")


def _line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    node, line = value_node, key_node.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
