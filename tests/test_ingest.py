"""The alert ingest path: group commit, the rows written through compiled statements, the webhook
endpoint's contract (OpenAPI, errors) and ids that do not collide at thousands a second."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server import schema as t
from server.batcher import GroupCommit
from server.store import new_id
from tests.api_helpers import ALERT_FILE, api, auth

TEMPLATE = json.loads(ALERT_FILE.read_text())


def _body(fingerprint: str, instance: str = "sql-prod-01:1433") -> dict[str, Any]:
    doc = copy.deepcopy(TEMPLATE)
    doc["alerts"][0]["fingerprint"] = fingerprint
    doc["alerts"][0]["labels"]["instance"] = instance
    return doc


# --- group commit ---------------------------------------------------------------------------------


def test_group_commit_batches_concurrent_requests_answers_each_and_runs_after_work_last() -> None:
    batches: list[list[int]] = []
    after: list[tuple[list[int], bool]] = []
    callers_done: set[int] = set()
    gate = threading.Event()

    def handle_many(items: list[int]) -> list[int]:
        gate.wait(5)  # the first batch holds the writer while the others queue up
        batches.append(items)
        return [i * 10 for i in items]

    def after_commit(results: list[int]) -> None:
        time.sleep(0.05)  # the callers are answered before this runs
        after.append((results, {r // 10 for r in results} <= callers_done))

    writer = GroupCommit(handle_many, max_batch=8, after=after_commit)

    async def one(i: int) -> int:
        r = await writer.submit(i)
        callers_done.add(i)
        return r

    async def main() -> list[int]:
        first = asyncio.ensure_future(one(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(one(i)) for i in range(1, 20)]
        await asyncio.sleep(0.05)
        gate.set()
        return [await first, *[await f for f in rest]]

    try:
        assert asyncio.run(main()) == [i * 10 for i in range(20)]
    finally:
        writer.close()
    assert batches[0] == [0] and [len(b) for b in batches[1:]] == [8, 8, 3]  # queued ones went together
    assert sorted(i for b in batches for i in b) == list(range(20))
    time.sleep(0.2)
    assert [len(r) for r, _ in after] == [1, 8, 8, 3] and all(answered for _, answered in after)


def test_group_commit_failure_reaches_every_caller_of_the_batch_and_the_writer_goes_on() -> None:
    gate = threading.Event()

    def handle_many(items: list[str]) -> list[str]:
        if items == ["hold"]:
            gate.wait(5)
        if "bad" in items:
            raise RuntimeError("disk full")
        return items

    ran_after: list[list[str]] = []
    writer = GroupCommit(handle_many, after=ran_after.append)

    async def main() -> list[Any]:
        hold = asyncio.ensure_future(writer.submit("hold"))
        await asyncio.sleep(0.05)
        bad, good = asyncio.ensure_future(writer.submit("bad")), asyncio.ensure_future(writer.submit("b"))
        await asyncio.sleep(0.05)
        gate.set()
        answers = await asyncio.gather(hold, bad, good, return_exceptions=True)
        return [*answers, await writer.submit("c")]

    try:
        hold, bad, good, later = asyncio.run(main())
    finally:
        writer.close()
    assert hold == "hold" and later == "c"
    assert isinstance(bad, RuntimeError) and isinstance(good, RuntimeError)  # one batch, one fate
    assert ran_after == [["hold"], ["c"]]  # no after-commit work for the failed batch


# --- the webhook over the embedded store ----------------------------------------------------------


def test_concurrent_webhooks_are_stored_once_each_deduplicated_and_queued(tmp_path: Path) -> None:
    """40 posts from 8 threads at once (so the writer batches them); 10 repeat an earlier
    fingerprint. Each distinct alert is stored once with its count, starts one investigation with
    one queue entry, and every JSON column reads back as SQLAlchemy wrote it before."""
    fingerprints = [f"ingest-{i:03d}" for i in range(30)] + [f"ingest-{i:03d}" for i in range(0, 30, 3)]
    with api(tmp_path, workers=0) as (client, ctx):
        op = auth(ctx.auth.create("am", "operator"))

        def post(fp: str) -> dict[str, Any]:
            r = client.post("/api/v1/alerts/alertmanager", json=_body(fp, f"host-{fp}:9100"), headers=op)
            assert r.status_code == 202, r.text
            return r.json()  # type: ignore[no-any-return]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, fingerprints[:30]))  # first the distinct ones, then repeats
            repeats = list(pool.map(post, fingerprints[30:]))
        with ctx.store.engine.connect() as c:
            alerts = [dict(r) for r in c.execute(select(t.alerts)).mappings()]
            queued = [r[0] for r in c.execute(select(t.queue.c.key))]
            bodies = c.execute(select(t.alert_bodies.c.id)).all()
        inv_ids = {a["investigation_id"] for a in alerts}
        assert len(alerts) == 30 and len(bodies) == 40 and len(inv_ids) == 30
        assert sorted(queued) == sorted(inv_ids)
        counts = {a["fingerprint"]: a["count"] for a in alerts}
        assert counts == {fp: 2 if int(fp[-3:]) % 3 == 0 else 1 for fp in fingerprints[:30]}
        assert all(r["alerts"][0]["deduplicated"] and r["alerts"][0]["count"] == 2 for r in repeats)
        first = {a["alerts"][0]["fingerprint"]: a["alerts"][0] for a in answers}
        for r in repeats:
            assert (
                r["alerts"][0]["investigation_id"] == first[r["alerts"][0]["fingerprint"]]["investigation_id"]
            )
        inv = ctx.store.get_investigation(answers[0]["investigations_started"][0])
        assert inv is not None and inv["status"] == "queued" and inv["kind"] == "alert"
        assert inv["graph_input"]["alert"]["fingerprint"] == answers[0]["alerts"][0]["fingerprint"]
        assert inv["alert_ids"] == [answers[0]["alerts"][0]["alert_id"]] and inv["route"] == []
        assert alerts[0]["notes"] == [] and inv["report"] is None
        metrics = client.get("/metrics").text
        assert 'opscopilot_alerts_received_total{source="alertmanager"} 40.0' in metrics
        assert 'opscopilot_alerts_deduplicated_total{source="alertmanager"} 10.0' in metrics


def test_a_failed_batch_stores_nothing_of_any_body_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with api(tmp_path, workers=0) as (_client, ctx):
        raw = [json.dumps(_body(f"atomic-{i}")).encode() for i in range(3)]

        def broken(_conn: Any, _rows: Any) -> None:
            raise RuntimeError("the disk is full")

        monkeypatch.setattr(ctx.intake.sql.alerts, "executemany", broken)  # after bodies and investigations
        with pytest.raises(RuntimeError, match="disk is full"):
            ctx.intake.accept_many([("alertmanager", r, "test") for r in raw])
        with ctx.store.engine.connect() as c:
            counts = [
                c.exec_driver_sql(f"SELECT COUNT(*) FROM {name}").scalar()
                for name in ("alert_bodies", "alerts", "investigations", "work_queue")
            ]
        assert counts == [0, 0, 0, 0]


def test_the_webhook_is_documented_and_refuses_what_it_cannot_take(tmp_path: Path) -> None:
    with api(tmp_path, workers=0) as (client, ctx):
        spec = client.get("/api/v1/openapi.json").json()
        op = spec["paths"]["/api/v1/alerts/{source}"]["post"]
        assert op["parameters"][0]["schema"]["enum"] == [
            "alertmanager",
            "grafana",
            "elastic_watcher",
            "generic",
        ]
        assert op["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/IntakeResult"
        )
        assert {"401", "403", "413", "422"} <= set(op["responses"])
        assert {"IntakeResult", "AlertOutcome", "Problem"} <= set(spec["components"]["schemas"])
        assert "get" in spec["paths"]["/api/v1/alerts"]  # the FastAPI route beside it is still there

        token = auth(ctx.auth.create("am", "operator"))
        viewer = auth(ctx.auth.create("vic", "viewer"))
        unknown = client.post("/api/v1/alerts/nagios", json=_body("x"), headers=token)
        assert unknown.status_code == 422 and unknown.json()["problems"][0].startswith("path.source:")
        assert client.get("/api/v1/alerts/alertmanager", headers=token).status_code == 405
        nobody = client.post("/api/v1/alerts/alertmanager", json=_body("x"))
        assert nobody.status_code == 401 and nobody.headers["www-authenticate"] == "Bearer"
        assert client.post("/api/v1/alerts/alertmanager", json=_body("x"), headers=viewer).status_code == 403
        declared = client.post(
            "/api/v1/alerts/generic",
            content=b"{}",
            headers=token | {"Content-Length": str(2 * 1024 * 1024)},
        )
        assert declared.status_code == 413 and declared.json()["detail"].startswith("the body is larger")
        missing = client.post("/api/v1/alerts/grafana", json={"orgId": 1, "alerts": [{}]}, headers=token)
        assert missing.status_code == 422 and "alerts[0].labels is missing" in missing.json()["problems"]
        metrics = client.get("/metrics").text
        for reason in ("malformed", "unauthenticated", "forbidden"):
            assert f'reason="{reason}"' in metrics


def test_ids_carry_48_random_bits_and_do_not_repeat() -> None:
    ids = [new_id("alr") for _ in range(20_000)]
    assert all(re.fullmatch(r"alr-\d{8}-\d{6}-[0-9a-f]{12}", i) for i in ids[:10])
    assert len(set(ids)) == len(ids)
