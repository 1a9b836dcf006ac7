"""The /api/v1/kb routes in the service's app (TestClient), with a real embedded store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api_helpers import api, auth
from tools.knowledge.store import KnowledgeStore

ROOT = Path(__file__).resolve().parent.parent
FILES = [
    {"name": p.relative_to(ROOT / "docs" / "knowledge").as_posix(), "content": p.read_text(encoding="utf-8")}
    for p in sorted((ROOT / "docs" / "knowledge").rglob("*"))
    if p.suffix in (".md", ".yaml") and p.name != "README.md"
]


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    monkeypatch.chdir(tmp_path)  # no settings file: estate is empty
    with (
        KnowledgeStore(collection_name="api-test", owned=True) as store,
        api(tmp_path, no_auth=True) as (test_client, ctx),
    ):
        ctx.extras["knowledge_store"] = store
        yield test_client


def test_ingest_needs_an_admin_and_search_a_viewer(tmp_path: Path) -> None:
    with KnowledgeStore(collection_name="api-auth-test", owned=True) as store, api(tmp_path) as (c, ctx):
        ctx.extras["knowledge_store"] = store
        viewer = ctx.auth.create("vera", "viewer")
        assert c.get("/api/v1/kb/stats").status_code == 401
        assert c.get("/api/v1/kb/stats", headers=auth(viewer)).status_code == 200
        r = c.post("/api/v1/kb/ingest", json={"files": FILES}, headers=auth(viewer))
        assert r.status_code == 403


def test_upload_ingest_search_and_stats(client: TestClient) -> None:
    half_written = {"name": "postmortems/half.md", "content": "---\nid: HALF\ntitle: cut off"}
    r = client.post("/api/v1/kb/ingest", json={"files": [*FILES, half_written]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(body["added"]) == ["INC-0988", "INC-2031", "PM-2025-031", "RB-SQL-007"]
    assert (
        body["skipped"] == [{"file": "postmortems/half.md", "reason": body["skipped"][0]["reason"]}]
        and "not closed with '---'" in body["skipped"][0]["reason"]
    )
    again = client.post("/api/v1/kb/ingest", json={"files": FILES}).json()
    assert (again["added"], again["updated"], again["unchanged"], again["documents"]) == ([], [], 4, 4)

    r = client.get("/api/v1/kb/search", params={"q": "commits slow, WRITELOG waits on sql-prod-10"})
    assert r.status_code == 200
    found = r.json()
    assert found["incidents"][0]["id"] == "PM-2025-031"
    assert found["incidents"][0]["resolution"].startswith("Storage moved the snapshot schedule")
    assert found["runbooks"][0]["id"] == "RB-SQL-007" and len(found["runbooks"][0]["steps"]) == 5
    only = client.get(
        "/api/v1/kb/search", params={"q": "log", "service": "sql-prod-01", "kind": "incident"}
    ).json()
    assert {h["id"] for h in only["incidents"]} == {"INC-0988", "INC-2031"} and only["runbooks"] == []
    stats = client.get("/api/v1/kb/stats").json()
    assert (stats["documents"], stats["runbooks"], stats["embedding_dimension"]) == (4, 1, 384)


def test_documents_can_be_posted_as_json(client: TestClient) -> None:
    doc = {"id": "OPS-1", "title": "Replica lag on pg-orders-02", "services": ["pg-orders-02"],
           "symptoms": "WAL receiver stalled", "resolution": "restarted the receiver"}  # fmt: skip
    assert client.post("/api/v1/kb/ingest", json={"documents": [doc]}).json()["added"] == ["OPS-1"]
    hit = client.get("/api/v1/kb/search", params={"q": "replication lag pg-orders-02"}).json()["incidents"][0]
    assert hit["id"] == "OPS-1" and hit["matched"] == ["pg-orders-02"]


def test_bad_requests_name_the_field(client: TestClient) -> None:
    r = client.post("/api/v1/kb/ingest", json={"files": FILES, "itsm": "jira"})
    assert r.status_code == 422 and "give exactly one of files, documents or itsm" in r.text
    r = client.post("/api/v1/kb/ingest", json={"documents": [{"id": "X"}]})
    assert r.status_code == 422 and "title" in r.text
    r = client.post("/api/v1/kb/ingest", json={"itsm": "servicenow"})
    assert r.status_code == 400 and "no estate.servicenow section" in r.json()["detail"]
    assert client.get("/api/v1/kb/search", params={"q": ""}).status_code == 422
    assert client.get("/api/v1/kb/search", params={"q": "x", "kind": "memo"}).status_code == 422
