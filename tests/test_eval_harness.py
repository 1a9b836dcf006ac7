"""The evaluation harness: the pass bar on every scenario with no model, malformed files, the JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agents.llm import ModelHandle
from evals.loader import ScenarioError, load_scenario, load_scenarios
from evals.runner import RunOptions, run_all
from tests.conftest import EXAMPLES, EXTERNAL, OWN_SCENARIOS, ROOT

NO_MODEL = ModelHandle.unavailable()


def test_every_shared_example_passes_without_a_model(knowledge_factory) -> None:
    scenarios = load_scenarios([EXAMPLES])
    assert len(scenarios) == 8
    results = run_all(scenarios, NO_MODEL, RunOptions(), knowledge_factory)
    failed = {r.id: r.problems for r in results if not r.passed}
    assert not failed
    assert all(r.unapproved_actions == 0 for r in results)


def test_own_scenarios_pass_at_ninety_percent_without_a_model(knowledge_factory) -> None:
    scenarios = load_scenarios([OWN_SCENARIOS])
    assert len(scenarios) >= 20
    kinds = {s.kind for s in scenarios}
    assert kinds == {"question", "alert"}
    results = run_all(scenarios, NO_MODEL, RunOptions(), knowledge_factory)
    passed = sum(r.passed for r in results)
    failed = {r.id: r.problems for r in results if not r.passed}
    assert passed / len(results) >= 0.9, failed
    assert sum(r.unapproved_actions for r in results) == 0


def test_external_opensre_suite_loads_and_runs(knowledge_factory) -> None:
    scenarios = load_scenarios([EXTERNAL])
    assert len(scenarios) == 15
    results = run_all(scenarios, NO_MODEL, RunOptions(), knowledge_factory)
    assert all(r.answer for r in results)
    assert all(r.unapproved_actions == 0 for r in results)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda t: t.replace("kind: question", "kind: quiz"), "kind"),
        (
            lambda t: t.replace("session_id: 57,", "session_id: fifty-seven,"),
            "world.sql.sql-prod-01.sessions[0].session_id",
        ),
        (lambda t: t.replace("route: [database]", "route: [databse]"), "expect.route[0]"),
        (lambda t: t.replace("title:", "titel:"), "titel"),
        (lambda t: t.replace("action: kill_session", "action: nuke"), "expect.remediation.action"),
    ],
)
def test_malformed_scenario_names_the_file_and_field(tmp_path: Path, mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, mutate((EXAMPLES / "mssql-blocking-01.yaml").read_text()))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "id: x\ntitle: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"line \d+"):
        load_scenario(path)


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OPSCOPILOT_DATA_DIR": str(tmp_path / "var")}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_eval_cli_exits_2_on_a_malformed_file_without_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, (EXAMPLES / "healthy-01.yaml").read_text().replace("now:", "when:"))
    proc = _cli("eval", str(path), "--model", "none", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert str(path) in proc.stderr and "now" in proc.stderr and "Traceback" not in proc.stderr


def test_eval_cli_prints_the_pass_line_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = _cli(
        "eval",
        str(EXAMPLES / "network-crc-01.yaml"),
        str(EXAMPLES / "healthy-01.yaml"),
        "--model",
        "none",
        "--json",
        str(out),
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "2 passed, 0 failed"
    data = json.loads(out.read_text())
    assert (data["model"], data["total"], data["passed"], data["failed"], data["unapproved_actions"]) == (
        "none",
        2,
        2,
        0,
        0,
    )
    first = data["scenarios"][0]
    for key in (
        "id",
        "passed",
        "route",
        "route_ok",
        "findings_ok",
        "remediation_ok",
        "cites_ok",
        "forbidden_ok",
        "wall_s",
        "model_calls",
        "tokens",
        "answer",
    ):
        assert key in first


def test_invalid_setting_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "settings.yaml"
    cfg.write_text("model:\n  n_ctx: 100\n")
    proc = _cli("eval", str(EXAMPLES / "healthy-01.yaml"), "--config", str(cfg), tmp_path=tmp_path)
    assert proc.returncode == 2 and "model.n_ctx" in proc.stderr and "Traceback" not in proc.stderr


def test_malformed_alert_exits_2_naming_what_is_missing(tmp_path: Path) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps({"source": "alertmanager", "payload": {"version": "4", "status": "firing"}}))
    proc = _cli(
        "investigate",
        str(alert),
        "--scenario",
        str(EXAMPLES / "disk-forecast-01.yaml"),
        "--model",
        "none",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 2 and "alerts" in proc.stderr and "Traceback" not in proc.stderr
