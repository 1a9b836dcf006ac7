"""The service on PostgreSQL (store and checkpoints) and Redis Streams, with real servers:
the same code as on SQLite; pending proposals survive a restart of every process; two worker
processes share a stream and one `kill -9` loses nothing and runs nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from server import schema as t
from server.app import build_context
from tests.api_helpers import ALERT_FILE, DEMO, api, auth, settings_for, wait_for
from tests.conftest import ROOT
from tests.live.service_env import REDIS, private_database, private_stream

pytestmark = pytest.mark.live


def test_postgresql_store_runs_the_same_flow_and_pending_proposals_survive_a_restart(tmp_path: Path) -> None:
    with private_database() as url:
        with api(tmp_path, store_url=url, checkpoint_url=url) as (client, ctx):
            op = auth(ctx.auth.create("am", "operator"))
            approver = ctx.auth.create("pat", "approver")
            posted = client.post("/api/v1/alerts/alertmanager", content=ALERT_FILE.read_bytes(), headers=op)
            assert posted.status_code == 202, posted.text
            inv_id = posted.json()["alerts"][0]["investigation_id"]
            assert wait_for(client, inv_id, op)["status"] == "awaiting_approval"
            dup = client.post(
                "/api/v1/alerts/alertmanager", content=ALERT_FILE.read_bytes(), headers=op
            ).json()
            assert dup["alerts"][0]["deduplicated"] and dup["alerts"][0]["count"] == 2
        # every process gone; a new one on the same database still has the proposal and can resume it
        with api(tmp_path / "again", store_url=url, checkpoint_url=url) as (client, ctx):
            pending = client.get("/api/v1/approvals", headers=auth(approver)).json()
            assert [a["investigation_id"] for a in pending] == [inv_id]
            decision = {"decision": "approve", "comment": "ok"}
            url_ = f"/api/v1/approvals/{pending[0]['id']}/decision"
            done = client.post(url_, json=decision, headers=auth(approver))
            assert done.status_code == 200, done.text
            assert done.json()["investigation_status"] == "approved"


def _alert(i: int) -> bytes:
    body = json.loads(ALERT_FILE.read_text())
    body["alerts"][0]["fingerprint"] = f"redis-{i:04d}"
    body["alerts"][0]["labels"]["run"] = str(i)
    return json.dumps(body).encode()


def test_two_redis_workers_and_a_kill_9_investigate_every_alert_exactly_once(tmp_path: Path) -> None:
    n = 24
    with private_database() as url, private_stream() as stream:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OPSCOPILOT_")},
            "OPSCOPILOT_DATA_DIR": str(tmp_path / "var"),
            "OPSCOPILOT_MODEL_SPEC": "none",
            "OPSCOPILOT_CHECKPOINT_URL": url,
            "OPSCOPILOT_SERVICE__STORE_URL": url,
            "OPSCOPILOT_SERVICE__REDIS_URL": REDIS,
            "OPSCOPILOT_SERVICE__REDIS_STREAM": stream,
            "OPSCOPILOT_SERVICE__CLAIM_TIMEOUT_S": "3",
            "HF_HUB_OFFLINE": "1",
        }
        settings = settings_for(
            tmp_path, url, store_url=url, redis_url=REDIS, redis_stream=stream, claim_timeout_s=3
        )
        ctx = build_context(settings, scenario=DEMO)
        ids = [
            ctx.intake.accept("alertmanager", _alert(i), "test").investigations_started[0] for i in range(n)
        ]
        cmd = [sys.executable, "-m", "server.cli", "worker", "--scenario", str(DEMO), "--threads", "1"]
        workers = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                   for _ in range(2)]  # fmt: skip
        victim = workers[0]
        try:
            killed_mid_run = False
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # kill -9 the first worker while it runs an investigation
                running = select(t.investigations.c.owner).where(t.investigations.c.status == "investigating")
                with ctx.store.engine.connect() as c:
                    owners = [r[0] for r in c.execute(running)]
                if any(o and o.endswith(f":{victim.pid}") for o in owners):
                    victim.send_signal(signal.SIGKILL)
                    killed_mid_run = True
                    break
                time.sleep(0.005)
            assert killed_mid_run, "the first worker never started an investigation"
            victim.wait(10)
            deadline = time.monotonic() + 180
            rows: list = []
            while time.monotonic() < deadline:
                with ctx.store.engine.connect() as c:
                    rows = [dict(r) for r in c.execute(select(t.investigations)).mappings()]
                if all(r["status"] not in ("queued", "investigating") for r in rows) and len(rows) == n:
                    break
                time.sleep(0.5)
        finally:
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
                    w.wait(20)
            ctx.service.close()
            ctx.store.close()
        assert sorted(r["id"] for r in rows) == sorted(ids)  # nothing lost
        assert {r["status"] for r in rows} <= {"awaiting_approval", "superseded"}, [r["status"] for r in rows]
        assert all(r["finished_at"] for r in rows)
        restarted = [r for r in rows if r["runs"] > 1]
        assert len(restarted) == 1 and restarted[0]["runs"] == 2  # only the killed run, taken over once
