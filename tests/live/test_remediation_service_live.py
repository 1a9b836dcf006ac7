"""kill_session through the HTTP service on a private PostgreSQL 15 (started here from a temporary
directory on a free port, so no other engineer's session can be proposed or touched).

A reconciler holds a row lock, idle in its transaction; a checkout UPDATE waits on it. An operator asks
the service (live sources: the instance through its read-only login); the investigation pauses with a
kill_session proposal. The requester's own approval is refused (403, audited); a second person with
an approver token approves over HTTP (the policy asks for the role `approver`, which the token gives);
the service resumes the graph, which ends the head blocker once through the separate privileged login
and re-reads the sessions to verify. GET returns the outcome; a second approval is refused and
nothing runs again; the audit log verifies; the outcome is learned as a past incident in the team's
knowledge store.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from server.app import build_context, create_app
from server.settings import Settings
from tests.api_helpers import auth, wait_for
from tests.live import unavailable
from tests.live.private_servers import HOST, RO_PASSWORD, RO_USER, Unavailable, private_postgres

pytestmark = pytest.mark.live

POLICY = """\
version: 1
rules:
  - action: kill_session
    entities: ["pg-svc-*"]
    risk: high
    approver_roles: [approver]   # the service's token role
    dry_run: false
    cooldown: 0
    verify_after: 0.5s
    verify_for: 20s
"""


@contextlib.contextmanager
def blocking_chain(port: int) -> Iterator[dict[str, Any]]:
    """Database svc_orders, an application login, a privileged actions login, and a live chain."""

    def connect(user: str, app: str, autocommit: bool = True) -> psycopg.Connection[Any]:
        return psycopg.connect(host=HOST, port=port, dbname="svc_orders", user=user, password="svc-dev",
                               application_name=app, autocommit=autocommit, connect_timeout=5)  # fmt: skip

    with psycopg.connect(host=HOST, port=port, dbname="postgres", user="postgres", autocommit=True) as admin:
        admin.execute("CREATE DATABASE svc_orders")
        admin.execute("CREATE ROLE svc_app LOGIN PASSWORD 'svc-dev'")
        admin.execute(
            "CREATE ROLE svc_killer LOGIN PASSWORD 'svc-dev' IN ROLE pg_signal_backend, pg_read_all_stats"
        )
    with psycopg.connect(
        host=HOST, port=port, dbname="svc_orders", user="postgres", autocommit=True
    ) as admin:
        admin.execute("CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL)")
        admin.execute("INSERT INTO orders SELECT g, 'NEW' FROM generate_series(1, 10) g")
        admin.execute("GRANT SELECT, UPDATE ON orders TO svc_app")
    blocker = connect("svc_app", "nightly-reconciler", autocommit=False)
    waiter = connect("svc_app", "checkout-api")
    errors: list[BaseException] = []

    def checkout() -> None:
        try:
            waiter.execute("SET statement_timeout = '120s'")
            waiter.execute("UPDATE orders SET status = 'PAID' WHERE id = 1")
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    blocker.execute("UPDATE orders SET status = 'RECONCILED' WHERE id = 1")
    thread = threading.Thread(target=checkout, daemon=True)
    thread.start()
    admin = psycopg.connect(host=HOST, port=port, dbname="svc_orders", user="postgres", autocommit=True)
    deadline = time.monotonic() + 30
    while not admin.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone():
        assert time.monotonic() < deadline, "the checkout UPDATE never waited"
        time.sleep(0.2)
    try:
        yield {"head": blocker.info.backend_pid, "thread": thread, "errors": errors, "admin": admin}
    finally:
        with contextlib.suppress(psycopg.Error):
            blocker.rollback()
        thread.join(timeout=15)
        for c in (blocker, waiter, admin):
            with contextlib.suppress(psycopg.Error):
                c.close()


def settings(tmp_path: Path, port: int) -> Settings:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    instance = {
        "name": "pg-svc-01",
        "engine": "postgresql",
        "driver": "PostgreSQL Unicode",
        "host": HOST,
        "port": port,
        "database": "svc_orders",
        "username": RO_USER,
        "password": {"env": "SVC_RO_PASSWORD"},
        "actions_login": {"username": "svc_killer", "password": {"env": "SVC_KILL_PASSWORD"}},
    }
    # the sections as a settings file gives them: Settings resolves their secret references
    sections: dict[str, Any] = {
        "estate": {"sql": [instance]},
        "service": {"workers": 1},
        "actions": {"policy_file": str(policy)},
    }
    return Settings(data_dir=tmp_path / "var", model_spec="none", **sections)


def test_an_http_approval_by_a_second_user_kills_the_head_blocker_once_and_verifies_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SVC_RO_PASSWORD", RO_PASSWORD)
    monkeypatch.setenv("SVC_KILL_PASSWORD", "svc-dev")
    try:
        server = private_postgres()
        pg = server.__enter__()
    except Unavailable as exc:
        unavailable(str(exc))
    try:
        with blocking_chain(pg.port) as chain:
            ctx = build_context(settings(tmp_path, pg.port))
            assert ctx.source_ref == "live"
            from fastapi.testclient import TestClient

            with TestClient(create_app(ctx)) as client:
                carol = ctx.auth.create("carol", "operator")
                erin = ctx.auth.create("erin", "approver")
                queued = client.post(
                    "/api/v1/investigations",
                    json={"question": "why is the checkout query blocked?"},
                    headers=auth(carol),
                )
                inv = wait_for(client, queued.json()["investigation_id"], auth(carol), timeout=240)
                assert inv["status"] == "awaiting_approval", inv
                approval = inv["approval"]
                assert approval["origin"] == "live"
                (kill,) = [p for p in approval["proposals"] if p["action"] == "kill_session"]
                assert kill["target"] == f"pg-svc-01 session {chain['head']}" and kill["state"] == "pending"
                assert (
                    kill["risk"] == "high"
                    and kill["dry_run"] is False
                    and kill["approver_roles"] == ["approver"]
                )
                url = f"/api/v1/approvals/{approval['id']}/decision"

                own = client.post(url, json={"decision": "approve"}, headers=auth(carol))
                assert own.status_code == 403
                assert (
                    chain["admin"]
                    .execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (chain["head"],))
                    .fetchone()
                ), "nothing may run before a second person approves"

                ok = client.post(
                    url,
                    json={
                        "decision": "approve",
                        "fingerprint": approval["fingerprint"],
                        "comment": "checkout down",
                    },
                    headers=auth(erin),
                )
                assert ok.status_code == 200, ok.text
                done = ok.json()["approval"]["proposals"][0]
                assert done["state"] == "verified", done
                assert done["result"]["outcome"] == "executed" and "was ended" in done["result"]["detail"]
                assert done["verification"]["resolved"] is True
                chain["thread"].join(timeout=30)
                assert not chain["thread"].is_alive() and not chain["errors"], chain["errors"]
                status = chain["admin"].execute("SELECT status FROM orders WHERE id = 1").fetchone()[0]
                assert status == "PAID"  # the blocked checkout UPDATE went through

                again = client.post(url, json={"decision": "approve"}, headers=auth(erin))
                assert again.status_code == 409
                fetched = client.get(f"/api/v1/approvals/{approval['id']}", headers=auth(carol)).json()
                assert fetched["proposals"][0]["state"] == "verified" and "verified" in fetched["outcome"]
                rt = ctx.service.actions()
                runs = rt.ledger.runs(approval["investigation_id"])
                assert [(r.outcome, r.dry_run) for r in runs] == [("executed", False)]
                kinds = [e.kind for e in rt.audit.entries(approval["investigation_id"])]
                for kind in ("proposed", "pending", "decision_refused", "decision", "approved", "executing",
                             "executed", "verified", "offered_to_knowledge"):  # fmt: skip
                    assert kind in kinds, kinds
                assert rt.audit.verify()[1] is None
                offered = next(
                    e
                    for e in rt.audit.entries(approval["investigation_id"])
                    if e.kind == "offered_to_knowledge"
                )
                from server.knowledge import knowledge_store

                learned = knowledge_store(ctx.settings).get(offered.details["incident"])
                assert learned is not None and "executed and verified by erin" in learned.resolution, learned
    finally:
        server.__exit__(None, None, None)
