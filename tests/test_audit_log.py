"""The hash-chained audit log and the execution ledger, on SQLite and on the real local PostgreSQL
(database actions_test): the same code on both. Tampering of every kind is detected and the first
bad entry named; `opscopilot audit verify` passes on a real log and fails on a tampered copy."""

from __future__ import annotations

import functools
import itertools
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from graphs.audit import AuditLog, read_jsonl, verify_chain
from graphs.ledger import RunLedger
from graphs.sqldb import Database
from tests.conftest import EXAMPLES, ROOT
from tests.live import unavailable

PG_URL = "postgresql://postgres@127.0.0.1:5432/actions_test"


def pg_database() -> str:
    """The actions_test database on the shared PostgreSQL, created when missing, emptied of our tables."""
    import psycopg

    try:
        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3
        ) as c:
            if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'actions_test'").fetchone():
                c.execute("CREATE DATABASE actions_test")
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at 127.0.0.1:5432: {exc}")
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS audit_log, action_runs")
    return PG_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.live)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path / "store.sqlite") if request.param == "sqlite" else pg_database()


def fill(log: AuditLog, n: int = 6) -> None:
    for i in range(n):
        log.append(
            thread_id="t1",
            kind=["proposed", "pending", "decision", "approved", "executed", "verified"][i % 6],
            actor="alice" if i == 2 else "opscopilot",
            subject="fp1",
            event_key=f"e{i}",
            data={"i": i},
        )


def test_entries_chain_and_appends_are_idempotent(store: str) -> None:
    log = AuditLog.open(store)
    fill(log)
    again = log.append(
        thread_id="t1", kind="proposed", actor="x", subject="fp1", event_key="e0", data={"i": 99}
    )
    entries = list(log.entries())
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6] and again.seq == 1 and again.details == {"i": 0}
    assert entries[0].prev_hash == "0" * 64 and all(
        b.prev_hash == a.hash for a, b in itertools.pairwise(entries)
    )
    assert log.verify() == (6, None)
    assert log.head() == (6, entries[-1].hash)
    log.close()


def tamper(store: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    db = Database(store)
    db.run(sql, params)
    db.close()


@pytest.mark.parametrize(
    ("sql", "params", "first_bad", "words"),
    [
        ("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3", (), 3, "was edited"),
        ("UPDATE audit_log SET data = ? WHERE seq = 4", ('{"i":3,"extra":1}',), 4, "was edited"),
        ("DELETE FROM audit_log WHERE seq = 2", (), 2, "entry 2 is missing"),
        ("UPDATE audit_log SET seq = seq + 100 WHERE seq = 5", (), 5, "missing"),
    ],
)
def test_an_edited_or_deleted_entry_is_detected_and_named(
    store: str, sql: str, params: tuple[Any, ...], first_bad: int, words: str
) -> None:
    log = AuditLog.open(store)
    fill(log)
    tamper(store, sql, params)
    _count, problem = log.verify()
    assert problem is not None and problem.seq == first_bad and words in problem.problem, problem
    log.close()


def test_a_rewritten_entry_with_a_recomputed_hash_or_a_reordering_breaks_the_next_link(store: str) -> None:
    log = AuditLog.open(store)
    fill(log)
    entries = list(log.entries())
    forged = entries[2].model_copy(update={"actor": "mallory"})
    forged = forged.model_copy(update={"hash": forged.computed_hash()})
    tamper(store, "UPDATE audit_log SET actor = ?, hash = ? WHERE seq = 3", (forged.actor, forged.hash))
    _, problem = log.verify()
    assert problem is not None and problem.seq == 4 and "does not follow entry 3" in problem.problem
    swapped = [
        *entries[:1],
        entries[2].model_copy(update={"seq": 2}),
        entries[1].model_copy(update={"seq": 3}),
        *entries[3:],
    ]
    _, problem = verify_chain(swapped)
    assert problem is not None and problem.seq == 2 and "was edited" in problem.problem
    log.close()


def test_concurrent_writers_keep_one_chain(store: str) -> None:
    logs = [AuditLog.open(store) for _ in range(5)]

    def write(i: int) -> None:
        for j in range(30):
            logs[i].append(thread_id=f"t{i}", kind="k", actor="a", subject="s", event_key=f"w{i}-{j}")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert logs[0].verify() == (150, None)
    for log in logs:
        log.close()


def test_the_ledger_claims_once_finishes_and_sees_a_dead_owner_as_stale(store: str) -> None:
    db = Database(store)
    ledger = RunLedger(db)
    now = datetime.now(UTC)
    claim = functools.partial(
        ledger.claim,
        "key1",
        now=now,
        thread_id="t1",
        fingerprint="fp",
        action="kill_session",
        entity="pg-1",
        dry_run=False,
    )
    assert claim() is True
    assert claim() is False  # a second attempt sees the first
    row = ledger.get("key1")
    assert row is not None and row.finished_at is None and not row.stale(now, timedelta(minutes=5))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host = row.owner.rpartition(":")[0]
    db.run("UPDATE action_runs SET owner = ? WHERE key = ?", (f"{host}:{dead.stdout.strip()}", "key1"))
    stale = ledger.get("key1")
    assert stale is not None and stale.stale(now, timedelta(minutes=5))
    assert ledger.take_over("key1", stale.owner, now) and not ledger.take_over("key1", stale.owner, now)
    ledger.finish("key1", "executed", {"outcome": "executed", "detail": "done"}, now)
    assert ledger.get("key1").result == {"outcome": "executed", "detail": "done"}  # type: ignore[union-attr]
    assert ledger.last_execution("pg-1", now - timedelta(minutes=1), exclude="other") is not None
    assert ledger.last_execution("pg-1", now - timedelta(minutes=1), exclude="key1") is None
    db.close()


# --- the CLI on a real log ---------------------------------------------------------------------------


def cli(tmp_path: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "OPSCOPILOT_DATA_DIR": str(tmp_path / "var"),
        "OPSCOPILOT_MODEL_SPEC": "none",
    }
    extra = ["--config", str(config)] if config else []
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow  # six CLI processes, each loading the model stack (about 90 s on 2 busy cores)
def test_audit_verify_passes_on_a_real_log_and_fails_on_a_tampered_copy(tmp_path: Path) -> None:
    """A real trail: an investigation through the CLI, a refused self-approval and a refused forged
    role (refused by the service before the graph resumes, and audited), then an approval by someone
    else (a replayed scenario: the action is rehearsed, a dry run).
    tests/test_remediation_graph.py proves the same on a log written in-process, in the default run."""
    asked = cli(
        tmp_path,
        "ask",
        "What is blocking checkout on sql-prod-01?",
        "--scenario",
        str(EXAMPLES / "mssql-blocking-01.yaml"),
        "--json",
        "-q",
    )
    assert asked.returncode == 0, asked.stderr
    thread = json.loads(asked.stdout)["thread_id"]  # its investigation id stands for its approval
    me = cli(tmp_path, "approvals", "approve", thread, "--as", __import__("getpass").getuser())
    assert me.returncode == 2 and "may not approve it" in me.stderr, me.stdout + me.stderr
    forged = cli(tmp_path, "approvals", "approve", thread, "--as", "alice", "--role", "dba")
    assert forged.returncode == 2 and "forged role" in forged.stderr
    approved = cli(tmp_path, "approvals", "approve", thread, "--as", "alice")
    assert "approved by alice" in approved.stdout and "nothing was run" in approved.stdout, approved.stdout

    ok = cli(tmp_path, "audit", "verify")
    assert ok.returncode == 0 and ": OK, 8 entries" in ok.stdout, ok.stdout + ok.stderr
    shown = cli(tmp_path, "audit", "show", "--thread", thread).stdout
    assert "decision_refused" in shown and "forged role" in shown and "approved" in shown
    head = cli(tmp_path, "audit", "head").stdout.strip()

    copy = tmp_path / "copy.sqlite"
    with sqlite3.connect(tmp_path / "var" / "opscopilot.sqlite") as live, sqlite3.connect(copy) as backup:
        live.backup(backup)
    with sqlite3.connect(copy) as conn:  # someone rewrites who refused-approved what
        conn.execute(
            "UPDATE audit_log SET actor = 'alice' WHERE kind = 'decision_refused' AND actor != 'alice'"
        )
    bad = cli(tmp_path, "audit", "verify", "--store", str(copy))
    assert bad.returncode == 1 and "TAMPERED at entry 3" in bad.stdout and "was edited" in bad.stdout, (
        bad.stdout
    )

    exported = tmp_path / "audit.jsonl"
    assert cli(tmp_path, "audit", "export", "--out", str(exported)).returncode == 0
    assert cli(tmp_path, "audit", "verify", "--file", str(exported)).returncode == 0
    lines = exported.read_text().splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:3] + lines[4:]) + "\n")  # entry 4 deleted
    cut = cli(tmp_path, "audit", "verify", "--file", str(tmp_path / "cut.jsonl"))
    assert cut.returncode == 1 and "entry 4 is missing" in cut.stdout
    (tmp_path / "short.jsonl").write_text("\n".join(lines[:-2]) + "\n")  # the last two removed
    short = cli(tmp_path, "audit", "verify", "--file", str(tmp_path / "short.jsonl"), "--expect-head", head)
    assert short.returncode == 1 and "cut off" in short.stdout
    assert len(list(read_jsonl(exported))) == int(head.split(":")[0])
