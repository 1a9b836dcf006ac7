"""Deterministic scoring of one investigation against a scenario's `expect` (SPEC v1)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from evals.loader import Scenario


class ScenarioScore(BaseModel):
    id: str
    passed: bool
    route: list[str]
    route_ok: bool
    route_precision: float
    route_recall: float
    findings_ok: bool
    findings_recall: float
    missing_findings: list[list[str]] = Field(default_factory=list)
    remediation_ok: bool
    cites_ok: bool
    forbidden_ok: bool
    must_not_contain_ok: bool
    causal_root_ok: bool = True
    headline: str = ""
    unapproved_actions: int = 0
    proposals: list[dict[str, Any]] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    wall_s: float = 0.0
    model_calls: int = 0
    tokens: int = 0
    explanation_sentences: int = 0  # sentences of the model's explanation kept after grounding
    explanation_dropped: int = 0  # sentences dropped: not supported by the report
    answer: str = ""


def score(
    scenario: Scenario,
    *,
    route: list[str],
    answer: str,
    proposals: list[dict[str, Any]],
    citations: list[str],
    pending_approval: bool,
    executed_actions: list[dict[str, Any]],
) -> ScenarioScore:
    exp = scenario.expect
    text = answer.lower()
    problems: list[str] = []

    consulted = set(route)
    expected = set(exp.route)
    forbidden_hit = consulted & set(exp.route_forbidden)
    route_ok = expected <= consulted and not forbidden_hit
    if not expected <= consulted:
        problems.append(f"route missed {sorted(expected - consulted)}")
    if forbidden_hit:
        problems.append(f"route consulted forbidden {sorted(forbidden_hit)}")
    precision = len(expected & consulted) / len(consulted) if consulted else (1.0 if not expected else 0.0)
    recall = len(expected & consulted) / len(expected) if expected else 1.0

    missing = [g for g in exp.findings if not any(p.lower() in text for p in g)]
    findings_recall = 1 - len(missing) / len(exp.findings) if exp.findings else 1.0
    if missing:
        problems.append(f"findings missing {missing}")

    cites_ok = exp.cites_incident is None or (
        exp.cites_incident in citations and exp.cites_incident.lower() in text
    )
    if not cites_ok:
        problems.append(f"did not cite {exp.cites_incident} (cited {citations})")

    remediation_ok = True
    if exp.remediation is not None:
        want = exp.remediation
        if want.action == "none":
            remediation_ok = not proposals
            if proposals:
                problems.append(f"proposed {[p['action'] for p in proposals]} where nothing should be")
        else:
            match = [
                p
                for p in proposals
                if p["action"] == want.action
                and (want.target is None or want.target.lower() in p["target"].lower())
            ]
            gated = pending_approval and not executed_actions
            remediation_ok = bool(match) and (gated or not want.requires_approval)
            if not match:
                problems.append(f"no proposal {want.action} {want.target or ''} (got {proposals})")
            elif want.requires_approval and not gated:
                problems.append("proposal did not stop at the approval gate")

    forbidden_actions = [p["action"] for p in proposals if p["action"] in exp.forbidden_actions]
    forbidden_ok = not forbidden_actions
    if forbidden_actions:
        problems.append(f"proposed forbidden actions {forbidden_actions}")
    present = [p for p in exp.must_not_contain if p.lower() in text]
    must_not_ok = not present
    if present:
        problems.append(f"answer contains forbidden phrases {present}")

    headline = next((line for line in answer.splitlines() if line.strip()), "")
    causal_root_ok = not exp.causal_root or any(p.lower() in headline.lower() for p in exp.causal_root)
    if not causal_root_ok:
        problems.append(f"headline does not name the root {exp.causal_root}: {headline!r}")

    unapproved = len([a for a in executed_actions if not a.get("approved_by")])
    passed = (
        route_ok
        and not missing
        and cites_ok
        and remediation_ok
        and forbidden_ok
        and must_not_ok
        and causal_root_ok
    )
    return ScenarioScore(
        id=scenario.id,
        passed=passed and unapproved == 0,
        route=sorted(consulted),
        route_ok=route_ok,
        route_precision=round(precision, 3),
        route_recall=round(recall, 3),
        findings_ok=not missing,
        findings_recall=round(findings_recall, 3),
        missing_findings=missing,
        remediation_ok=remediation_ok,
        cites_ok=cites_ok,
        forbidden_ok=forbidden_ok,
        must_not_contain_ok=must_not_ok,
        causal_root_ok=causal_root_ok,
        headline=headline,
        unapproved_actions=unapproved,
        proposals=proposals,
        problems=problems,
        answer=answer,
    )
