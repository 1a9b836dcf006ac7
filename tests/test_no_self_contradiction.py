"""No answer contradicts its own numbers, on every scenario we have (shared examples, our own, the converted
opensre suite): a reassuring sentence ("not near full", "healthy", "no issues", "nothing abnormal", "no
blocking", "no regressed queries") never stands next to a value over the threshold of the analyzer that
wrote it, and a reassuring headline never sits on top of a warning or critical finding."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from agents.llm import ModelHandle
from evals.loader import load_scenario
from evals.runner import RunOptions, investigate_scenario
from tests.conftest import EXAMPLES, EXTERNAL, OWN_SCENARIOS
from tools.network.analysis import SATURATED_PCT
from tools.sql.analysis import NEARLY_FULL_PCT

REGRESSION_RATIO = 2.0  # tools.sql.analysis.regressed_queries(min_ratio)
REASSURING = re.compile(
    r"^No |healthy|no issues|nothing abnormal|within normal|no anomalies|none is blocked|no errors", re.I
)
HEADLINE_ALL_CLEAR = re.compile(
    r"^(No issues found|Nothing abnormal in what was checked)|looks healthy", re.I
)
# (what the number measures, pattern capturing the number, the threshold it must stay under when reassuring)
MEASURES: list[tuple[str, re.Pattern[str], float]] = [
    (
        "a file's use of its size",
        re.compile(r"used \((\d+(?:\.\d+)?)%\)|(\d+(?:\.\d+)?)% used"),
        NEARLY_FULL_PCT,
    ),
    (
        "a file's use of what it can grow to",
        re.compile(r"(\d+(?:\.\d+)?)% of what it can grow to"),
        NEARLY_FULL_PCT,
    ),
    (
        "a percentage used or utilised",
        re.compile(r"(?:used|util\w*)[_ ]\w*\s*(?:at\s*)?(\d+(?:\.\d+)?)%", re.I),
        SATURATED_PCT,
    ),
    ("a slowdown against the baseline", re.compile(r"(\d+(?:\.\d+)?)x slower"), REGRESSION_RATIO),
]
BLOCKED = re.compile(r"(\d+) (?:sessions? )?blocked")


def scenario_paths() -> list[Path]:
    return sorted([*EXAMPLES.glob("*.yaml"), *OWN_SCENARIOS.glob("*.yaml"), *EXTERNAL.glob("*.yaml")])


def contradictions(report: dict[str, Any]) -> list[str]:
    """Every reassuring finding whose own text carries a value over its threshold, and an all-clear
    headline over a problem."""
    found = []
    for f in report["findings"]:
        if f["severity"] != "info" or not REASSURING.search(f["title"]):
            continue
        text = f"{f['title']}. {f['detail']}"
        for what, pattern, limit in MEASURES:
            values = [float(next(g for g in m.groups() if g)) for m in pattern.finditer(text)]
            over = [v for v in values if v >= limit]
            if over:
                found.append(f"{f['title']!r} next to {what} of {over[0]:g} (threshold {limit:g})")
        if re.search(r"no blocking|none is blocked", text, re.I):
            found += [f"{f['title']!r} next to {n} blocked" for n in BLOCKED.findall(text) if int(n) > 0]
    problems = [f for f in report["findings"] if f["severity"] != "info" and f["kind"] != "similar_incident"]
    if HEADLINE_ALL_CLEAR.search(report["headline"]) and problems:
        found.append(f"all-clear headline {report['headline']!r} over {problems[0]['title']!r}")
    return found


def test_the_checker_catches_the_disk_answer_of_old() -> None:
    """The contradiction issue 7 found, as the files check used to word it."""
    old = {
        "headline": "Most likely cause: db-host-02 /var/opt/mssql/data used_percent 84.1% rising",
        "findings": [
            {
                "severity": "info",
                "kind": "file_space_ok",
                "title": "No database file on db-host-02 is near full",
                "detail": "3 files checked; the fullest: Telemetry_data (data file of Telemetry): 402000 of "
                "410000 MB used (98%); unlimited, 79000 MB free on the volume; 82% of what it can grow to.",
            }
        ],
    }
    assert contradictions(old) == [
        "'No database file on db-host-02 is near full' next to a file's use of its size of 98 (threshold 90)"
    ]
    healthy_over_problem = {
        "headline": "No issues found on db1: it looks healthy",
        "findings": [{"severity": "warning", "kind": "wait_profile", "title": "Waits", "detail": ""}],
    }
    assert contradictions(healthy_over_problem)


@pytest.mark.parametrize("path", scenario_paths(), ids=lambda p: p.stem)
def test_no_answer_contradicts_its_own_numbers(path: Path, knowledge_factory: Any) -> None:
    scenario = load_scenario(path)
    values = investigate_scenario(scenario, ModelHandle.unavailable(), RunOptions(), knowledge_factory).values
    report = values["report"]
    assert contradictions(report) == [], values["answer"]
