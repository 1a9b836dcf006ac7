"""Alert ingest on PostgreSQL and Redis Streams, with the real servers: rows written through the
compiled statements (psycopg, one pipeline per batch) read back as SQLAlchemy reads them, and each
investigation started is published to the stream once, after the 202s went out."""

from __future__ import annotations

import copy
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from sqlalchemy import select

from server import schema as t
from tests.api_helpers import ALERT_FILE, api, auth
from tests.live.service_env import REDIS, private_database, private_stream

pytestmark = pytest.mark.live


def _body(fingerprint: str) -> dict[str, Any]:
    doc = copy.deepcopy(json.loads(ALERT_FILE.read_text()))
    doc["alerts"][0]["fingerprint"] = fingerprint
    doc["alerts"][0]["labels"]["instance"] = f"{fingerprint}:9100"
    return doc


def test_webhooks_on_postgresql_and_redis_are_stored_once_and_published_once(tmp_path: Path) -> None:
    fingerprints = [f"pg-{i:02d}" for i in range(24)] + ["pg-00", "pg-05", "pg-10"]
    with private_database() as url, private_stream() as stream:
        with api(
            tmp_path, checkpoint_url=url, store_url=url, redis_url=REDIS, redis_stream=stream, workers=0
        ) as (client, ctx):
            op = auth(ctx.auth.create("am", "operator"))

            def post(fp: str) -> dict[str, Any]:
                r = client.post("/api/v1/alerts/alertmanager", json=_body(fp), headers=op)
                assert r.status_code == 202, r.text
                return r.json()  # type: ignore[no-any-return]

            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(post, fingerprints[:24]))
                repeats = list(pool.map(post, fingerprints[24:]))
            started = [i for a in answers for i in a["investigations_started"]]
            r = redis.Redis.from_url(REDIS, decode_responses=True)
            published: list[str] = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(published) < len(started):
                # redis-py types the entries for RESP2 and RESP3 and without decoding; this client
                # decodes RESP2 replies: [(entry id, {field: value})]
                entries = cast("list[tuple[str, dict[str, str]]]", r.xrange(stream))
                published = [fields["inv"] for _id, fields in entries]
                time.sleep(0.05)
            with ctx.store.engine.connect() as c:
                alerts = {a["fingerprint"]: dict(a) for a in c.execute(select(t.alerts)).mappings()}
            inv = ctx.store.get_investigation(started[0])
        assert sorted(published) == sorted(started) and len(started) == 24  # each once
        assert all(x["alerts"][0]["deduplicated"] for x in repeats) and not any(
            x["investigations_started"] for x in repeats
        )
        assert {fp: a["count"] for fp, a in alerts.items() if a["count"] > 1} == {
            "pg-00": 2,
            "pg-05": 2,
            "pg-10": 2,
        }
        assert (
            inv is not None
            and inv["graph_input"]["alert"]["fingerprint"] == answers[0]["alerts"][0]["fingerprint"]
        )
        assert inv["alert_ids"] == [answers[0]["alerts"][0]["alert_id"]] and alerts["pg-01"]["notes"] == []
