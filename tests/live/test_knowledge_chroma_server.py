"""The knowledge store against a real Chroma server (`chroma run`, shipped with the chromadb package),
started by the test on a free loopback port with its own data folder, reached through HttpClient."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.knowledge import knowledge_store
from server.settings import KnowledgeConfig, Settings
from tests.live import unavailable
from tools.knowledge.documents import KnowledgeDoc
from tools.knowledge.embedding import bundled_model_path
from tools.knowledge.retrieval import Query
from tools.knowledge.store import KnowledgeStore, KnowledgeStoreError, knowledge_client

pytestmark = pytest.mark.live

DOCS = [
    KnowledgeDoc(id="INC-1", title="tempdb filled by version store", symptoms="tempdb 96% full",
                 services=["sql-prod-03"], resolution="killed the ETL session"),
    KnowledgeDoc(id="INC-2", title="Transaction log full", symptoms="error 9002", services=["sql-prod-01"]),
    KnowledgeDoc(id="RB-1", kind="runbook", title="tempdb is filling up", steps=["Find the oldest snapshot"]),
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = Path(sys.executable).with_name("chroma")
    if not binary.exists() and shutil.which("chroma") is None:
        unavailable("the chroma CLI (from the chromadb package) is not installed")
    work = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log = (work / "chroma.log").open("wb")
    proc = subprocess.Popen(
        [str(binary if binary.exists() else "chroma"), "run", "--path", str(work / "data"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"chroma server did not start: {(work / 'chroma.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_store_on_a_chroma_server_ingests_searches_and_reopens(chroma_url: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, knowledge=KnowledgeConfig(chroma_url=chroma_url, collection="team-kb")
    )
    store = knowledge_store(settings)
    report = store.ingest(DOCS)
    assert sorted(report.added) == ["INC-1", "INC-2", "RB-1"]
    hits = store.retrieve(Query(text="TempdbAlmostFull on sql-prod-03", k=2))
    assert hits[0].doc.id == "INC-1" and hits[0].doc.resolution == "killed the ETL session"
    assert store.retrieve(Query(text="tempdb filling", kinds=("runbook",)))[0].doc.steps == [
        "Find the oldest snapshot"
    ]
    assert not store.ingest(DOCS).changed  # the same documents again: nothing changes on the server

    other_process = knowledge_store(
        Settings(
            data_dir=tmp_path / "other",
            knowledge=KnowledgeConfig(chroma_url=chroma_url, collection="team-kb"),
        )
    )
    assert (
        other_process.size() == 3
        and other_process.search("error 9002 on sql-prod-01", k=1)[0].incident.id == "INC-2"
    )
    other_process.add(
        KnowledgeDoc(id="INC-3", title="Replica lag on pg-orders-02", symptoms="WAL receiver stalled")
    )
    store._checked_at = 0.0  # the first process notices the other's ingest at its next revision check
    assert store.size() == 4


def test_a_server_collection_refuses_another_embedding_model(chroma_url: str, tmp_path: Path) -> None:
    client = knowledge_client(type("Loc", (), {"chroma_path": None, "chroma_url": chroma_url})())
    KnowledgeStore(client, "model-stamp").ingest(DOCS[:1])
    other = tmp_path / "another-model"
    shutil.copytree(bundled_model_path(), other)
    with pytest.raises(KnowledgeStoreError, match="Vectors of different models are never mixed"):
        KnowledgeStore(client, "model-stamp", embedding_model=other)
