"""The command line as a new user meets it: clear messages and exit code 2 for bad input, no
tracebacks, help that names runnable examples, alert scenarios replayed by `investigate`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

DEMO = ROOT / "evals" / "scenarios" / "demo-checkout-blocking.yaml"


def cli(*args: str, tmp_path: Path, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "OPSCOPILOT_DATA_DIR": str(tmp_path / "var"),
        "HF_HUB_OFFLINE": "1",
        "USER": "tester",
        "LOGNAME": "tester",
    }
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ask", "", "--scenario", str(DEMO)], "the question is empty"),
        (["ask", "   ", "--scenario", str(DEMO)], "the question is empty"),
        (["ask", "why?", "--scenario", str(DEMO), "--model", "nonesuch"], "--model 'nonesuch'"),
        (["eval", str(EXAMPLES / "healthy-01.yaml"), "--model", "nonesuch"], "--model 'nonesuch'"),
        (["ask", "why?", "--scenario", str(DEMO), "--as", "  "], "--as must name"),
        (["approvals", "approve", "apr-nonesuch", "--as", "alice"], "no pending approval"),
    ],
)
def test_bad_input_is_a_message_and_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    proc = cli(*args, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr
    no_traceback(proc)


def test_eval_json_to_a_folder_or_an_unwritable_path_fails_before_running(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    proc = cli(
        "eval", str(EXAMPLES / "healthy-01.yaml"), "--model", "none", "--json", str(folder), tmp_path=tmp_path
    )
    assert proc.returncode == 2 and "is a folder" in proc.stderr
    assert "PASS" not in proc.stderr  # refused before any scenario ran
    no_traceback(proc)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes anywhere: a path below a file is unwritable for everyone
        target = tmp_path / "a-file" / "eval.json"
        (tmp_path / "a-file").write_text("x")
    else:
        target = locked / "eval.json"
    proc = cli(
        "eval", str(EXAMPLES / "healthy-01.yaml"), "--model", "none", "--json", str(target), tmp_path=tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    assert not list(tmp_path.rglob("*.tmp"))


def test_help_version_and_examples(tmp_path: Path) -> None:
    version = cli("--version", tmp_path=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("opscopilot ")
    short = cli("-h", tmp_path=tmp_path)
    assert short.returncode == 0 and ".venv/bin/opscopilot demo" in short.stdout
    for command in ("ask", "investigate", "doctor", "eval", "serve"):
        helped = cli(command, "-h", tmp_path=tmp_path)
        assert helped.returncode == 0, helped.stderr
        assert "config/prod.yaml" not in helped.stdout


def test_doctor_json_is_json_even_on_error(tmp_path: Path) -> None:
    proc = cli("doctor", "--json", tmp_path=tmp_path)
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and "no live sources are configured" in doc["error"]


def test_investigate_replays_an_alert_scenario_and_the_shipped_alert_file(tmp_path: Path) -> None:
    scenario = ROOT / "evals" / "scenarios" / "network-interface-down-alertmanager.yaml"
    proc = cli("investigate", "--scenario", str(scenario), "--model", "none", "--json", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] in ("done", "awaiting_approval") and "network" in doc["route"]
    shipped = ROOT / "examples" / "alerts" / "alertmanager-checkout-blocking.json"
    proc = cli(
        "investigate", str(shipped), "--scenario", str(DEMO), "--model", "none", "--json", tmp_path=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["route"][:1] == ["database"]


def test_a_resolved_only_alert_starts_nothing(tmp_path: Path) -> None:
    body = json.loads((ROOT / "examples" / "alerts" / "alertmanager-checkout-blocking.json").read_text())
    body["status"] = "resolved"
    for a in body["alerts"]:
        a["status"] = "resolved"
    path = tmp_path / "resolved.json"
    path.write_text(json.dumps(body))
    proc = cli("investigate", str(path), "--scenario", str(DEMO), "--model", "none", tmp_path=tmp_path)
    assert proc.returncode == 0 and "resolved: nothing to investigate" in proc.stdout
    assert "kill_session" not in proc.stdout


def test_replayed_asks_keep_one_pending_proposal_and_say_replay_and_who(tmp_path: Path) -> None:
    for _ in range(2):
        asked = cli("ask", "why is checkout slow on sql-prod-01?", "--scenario", str(DEMO), "--model", "none",
                    "-q", tmp_path=tmp_path)  # fmt: skip
        assert asked.returncode == 0, asked.stderr
    listed = cli("approvals", "list", tmp_path=tmp_path)
    lines = [ln for ln in listed.stdout.splitlines() if ln.startswith("apr-")]
    assert len(lines) == 1, listed.stdout  # the older identical proposal was superseded
    assert "replay, requested by tester" in lines[0] and "kill_session sql-prod-01 session 57" in lines[0]
    approval_id = lines[0].split()[0]
    decided = cli(
        "approvals", "approve", approval_id, "--as", "alice", "--comment", "batch job", tmp_path=tmp_path
    )
    assert decided.returncode == 0, decided.stderr
    history = cli("approvals", "list", "--all", tmp_path=tmp_path).stdout
    assert "approved by alice" in history and "superseded" in history


def test_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    proc = cli("serve", "--host", "0.0.0.0", "--no-auth", "--scenario", str(DEMO), tmp_path=tmp_path)
    assert proc.returncode == 2 and "--no-auth is refused on 0.0.0.0" in proc.stderr
    no_traceback(proc)


def test_every_file_an_example_names_exists(tmp_path: Path) -> None:
    """`--help` examples run as printed: the scenario and alert files they name are shipped."""
    import re

    from server.cli import app

    texts = [app.info.help or ""]
    for group in [app, *[g.typer_instance for g in app.registered_groups if g.typer_instance is not None]]:
        texts += [c.callback.__doc__ or "" for c in group.registered_commands if c.callback]
    named = {m for t in texts for m in re.findall(r"[\w./-]+\.(?:yaml|json)\b", t)}
    assert named, "the examples name no files"
    missing = [
        n for n in named if not n.startswith("var/") and "incident-" not in n and not (ROOT / n).exists()
    ]
    assert not missing, missing
    proc = cli("worker", tmp_path=tmp_path)  # nothing to investigate: a message, not a traceback
    assert proc.returncode == 2 and "nothing to investigate" in proc.stderr
    no_traceback(proc)
