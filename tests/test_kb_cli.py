"""`opscopilot kb` end to end in-process (Typer's runner): the examples in --help run as printed, bad
input exits 2 naming what to fix, and a second ingest of the same folder changes nothing."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from server.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("OPSCOPILOT_DATA_DIR", str(tmp_path))
    return tmp_path


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _examples(*command: str) -> list[list[str]]:
    code, text, _ = _run(*command, "--help")
    assert code == 0
    return [shlex.split(m)[1:] for m in re.findall(r"^\s*(opscopilot kb .+?)\s*$", text, re.M)]


def test_help_examples_run_as_printed(data_dir: Path) -> None:
    examples = (
        _examples("kb") + _examples("kb", "ingest") + _examples("kb", "search") + _examples("kb", "stats")
    )
    assert len(examples) >= 6
    ingest_first = sorted(examples, key=lambda e: e[1] != "ingest")
    for example in ingest_first:
        code, out, err = _run(*example)
        assert code == 0, (example, out, err)
    assert (data_dir / "knowledge").is_dir()


def test_ingest_twice_search_and_stats(data_dir: Path) -> None:
    code, out, _ = _run("kb", "ingest", "docs/knowledge", "--json")
    assert code == 0
    first = json.loads(out)["docs/knowledge"]
    assert sorted(first["added"]) == ["INC-0988", "INC-2031", "PM-2025-031", "RB-SQL-007"]
    assert first["skipped"] == []
    code, out, _ = _run("kb", "ingest", "docs/knowledge", "--json")
    again = json.loads(out)["docs/knowledge"]
    assert (again["added"], again["updated"], again["unchanged"], again["chunks"]) == ([], [], 4, 0)
    code, out, _ = _run("kb", "search", "commits slow at night, WRITELOG", "--json")
    hits = json.loads(out)
    assert (
        hits[0]["id"] == "PM-2025-031"
        and hits[0]["url"] == "https://wiki.example.com/postmortems/PM-2025-031"
    )
    assert [h["id"] for h in hits if h["kind"] == "runbook"] == ["RB-SQL-007"]
    code, out, _ = _run(
        "kb", "search", "log full", "--service", "sql-prod-01", "--kind", "incident", "--json"
    )
    assert {h["id"] for h in json.loads(out)} == {"INC-0988", "INC-2031"}
    code, out, _ = _run("kb", "stats", "--json")
    stats = json.loads(out)
    assert (stats["documents"], stats["incidents"], stats["runbooks"]) == (4, 3, 1)
    assert stats["embedding_model"].startswith("all-MiniLM-L6-v2") and stats["embedding_dimension"] == 384


def test_text_search_says_last_time_and_lists_runbook_steps(data_dir: Path) -> None:
    _run("kb", "ingest", "docs/knowledge", "--quiet")
    code, out, _ = _run("kb", "search", "WRITELOG waits on sql-prod-10")
    assert code == 0
    assert "last time, this fixed it: Storage moved the snapshot schedule" in out
    assert "[ ] 1. Check the log volume's write latency" in out


def test_bad_input_exits_2_and_says_what_to_do(data_dir: Path, tmp_path: Path) -> None:
    code, _, err = _run("kb", "ingest")
    assert code == 2 and "say what to ingest: a PATH (file or folder), --servicenow or --jira" in err
    code, _, err = _run("kb", "ingest", str(tmp_path / "nope"))
    assert code == 2 and "nope does not exist" in err
    code, _, err = _run("kb", "ingest", "--servicenow")
    assert code == 2 and "no estate.servicenow section in the settings" in err
    code, _, err = _run("kb", "search", "x", "--since", "yesterday-ish")
    assert code == 2 and "--since 'yesterday-ish' is not a date" in err
    code, _, err = _run("kb", "search", "x", "--kind", "memo")
    assert code == 2 and "--kind 'memo': use incident, runbook or all" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "half.md").write_text("---\nid: HALF\n", encoding="utf-8")
    (bad / "ok.yaml").write_text("- {id: INC-1, title: fine}\n", encoding="utf-8")
    code, out, err = _run("kb", "ingest", str(bad), "--quiet")
    assert code == 0 and "1 added" in out and f"skipped {bad / 'half.md'}: front matter" in err
    code, _, _ = _run("kb", "ingest", str(bad), "--quiet", "--strict")
    assert code == 2
    assert "Traceback" not in out + err
