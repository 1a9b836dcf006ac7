"""Scenario files (SPEC v1): load, validate, and report a broken file by file and field."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tools.base import ACTIONS, SPECIALISTS, ActionName, Specialist
from tools.world import World, parse_ts

ALERT_SOURCES = ("alertmanager", "grafana", "elastic_watcher", "generic")


class ScenarioError(ValueError):
    """A scenario file that breaks SPEC v1; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AlertInput(_Strict):
    source: Literal["alertmanager", "grafana", "elastic_watcher", "generic"]
    payload: dict[str, Any]


class ScenarioInput(_Strict):
    question: str | None = None
    alert: AlertInput | None = None


class ExpectedRemediation(_Strict):
    action: ActionName
    target: str | None = None
    requires_approval: bool = True


class Expect(_Strict):
    route: list[Specialist] = Field(default_factory=list)
    route_forbidden: list[Specialist] = Field(default_factory=list)
    findings: list[list[str]] = Field(default_factory=list)
    cites_incident: str | None = None
    remediation: ExpectedRemediation | None = None
    forbidden_actions: list[ActionName] = Field(default_factory=list)
    must_not_contain: list[str] = Field(default_factory=list)
    # the headline (the answer's first line) names the root cause: one of these phrases occurs in it
    causal_root: list[str] = Field(default_factory=list)

    @field_validator("causal_root", mode="before")
    @classmethod
    def _phrases(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("causal_root")
    @classmethod
    def _non_blank(cls, v: list[str]) -> list[str]:
        if any(not p.strip() for p in v):
            raise ValueError("causal_root phrases must not be empty")
        return v

    @field_validator("findings", mode="before")
    @classmethod
    def _groups(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [[str(p) for p in g] if isinstance(g, list) else [str(g)] for g in v]
        return v

    @field_validator("findings")
    @classmethod
    def _non_empty(cls, v: list[list[str]]) -> list[list[str]]:
        for i, group in enumerate(v):
            if not group or any(not p.strip() for p in group):
                raise ValueError(f"findings group {i} must hold at least one non-empty phrase")
        return v


class Scenario(_Strict):
    id: str
    title: str
    kind: Literal["question", "alert"]
    now: datetime
    input: ScenarioInput
    world: World = Field(default_factory=World)
    expect: Expect = Field(default_factory=Expect)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9-]+", v):
            raise ValueError("must match [a-z0-9-]+ (lower-case letters, digits, dashes)")
        return v

    @field_validator("now", mode="before")
    @classmethod
    def _now(cls, v: Any) -> datetime:
        return parse_ts(v)

    @model_validator(mode="after")
    def _input_matches_kind(self) -> Scenario:
        if self.kind == "question" and not self.input.question:
            raise ValueError("input.question is required when kind is question")
        if self.kind == "alert" and self.input.alert is None:
            raise ValueError("input.alert is required when kind is alert")
        return self


def _field_path(loc: tuple[Any, ...], data: Any) -> str:
    """Render a pydantic error location as `world.sql.sql-prod-01.sessions[2].session_id`."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif str(item) in {"function-after[_input_matches_kind()]"}:
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def format_validation_error(source: str, err: ValidationError, data: Any = None) -> str:
    lines = [f"{source}: does not follow the scenario format (SPEC v1):"]
    for e in err.errors()[:12]:
        path = _field_path(tuple(e["loc"]), data)
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (not in SPEC v1; remove it or fix its spelling)"
        elif e["type"] == "literal_error" and "expected" in e.get("ctx", {}):
            msg = f"{msg} (got {e.get('input')!r})"
        lines.append(f"  - {path}: {msg}")
    if len(err.errors()) > 12:
        lines.append(f"  ... and {len(err.errors()) - 12} more")
    return "\n".join(lines)


def load_scenario(path: Path) -> Scenario:
    """Read one scenario file; raise ScenarioError naming the file and field on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario must be a YAML mapping with id, title, kind, now, input")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(str(path), exc, data)) from None


def collect_paths(paths: list[Path]) -> list[Path]:
    """Expand folders into their *.yaml files (recursively), keep files, report missing ones."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.yaml") if q.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise ScenarioError(f"{p}: no such file or folder (give scenario .yaml files or folders)")
    if not out:
        raise ScenarioError(f"no *.yaml scenario files found in {', '.join(str(p) for p in paths)}")
    return out


def load_scenarios(paths: list[Path]) -> list[Scenario]:
    scenarios = [load_scenario(p) for p in collect_paths(paths)]
    seen: dict[str, int] = {}
    for s in scenarios:
        seen[s.id] = seen.get(s.id, 0) + 1
    dupes = [k for k, n in seen.items() if n > 1]
    if dupes:
        raise ScenarioError(f"duplicate scenario id(s): {', '.join(dupes)} (ids must be unique)")
    return scenarios


__all__ = [
    "ACTIONS",
    "ALERT_SOURCES",
    "SPECIALISTS",
    "Scenario",
    "ScenarioError",
    "collect_paths",
    "load_scenario",
    "load_scenarios",
]
