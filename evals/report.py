"""Eval results: the per-scenario table, the `N passed, N failed` line and the JSON file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from evals.scoring import ScenarioScore


def summary(model: str, results: list[ScenarioScore]) -> dict[str, Any]:
    passed = sum(r.passed for r in results)
    n = len(results) or 1
    return {
        "model": model,
        "total": len(results),
        "passed": passed,
        "failed": len(results) - passed,
        "unapproved_actions": sum(r.unapproved_actions for r in results),
        "route_precision": round(sum(r.route_precision for r in results) / n, 3),
        "route_recall": round(sum(r.route_recall for r in results) / n, 3),
        "findings_recall": round(sum(r.findings_recall for r in results) / n, 3),
        "remediation_correct": sum(r.remediation_ok for r in results),
        "wall_s_total": round(sum(r.wall_s for r in results), 3),
        "model_calls": sum(r.model_calls for r in results),
        "tokens": sum(r.tokens for r in results),
        "explanation_sentences": sum(r.explanation_sentences for r in results),
        "explanation_dropped": sum(r.explanation_dropped for r in results),
        "scenarios": [r.model_dump(mode="json") for r in results],
    }


def pass_line(results: list[ScenarioScore]) -> str:
    passed = sum(r.passed for r in results)
    return f"{passed} passed, {len(results) - passed} failed"


def writable_json_path(path: Path) -> str | None:
    """Why `path` cannot take the JSON result (a folder, an unwritable folder), or None when it can."""
    if path.is_dir():
        return f"{path} is a folder; give a file name, e.g. {path / 'eval.json'}"
    parent = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"cannot write {path} (permission denied)"
    return None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temporary file, then rename); the temporary file never stays behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
