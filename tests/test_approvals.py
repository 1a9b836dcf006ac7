"""The approval queue: evidence, roles, self-approval, expiry, fingerprints, tampered checkpoints."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import ormsgpack
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

from graphs.checkpointer import strict_serializer
from tests.api_helpers import api, auth, run_input, sse

QUESTION = "Why is checkout timing out on sql-prod-01?"


def _pending(client: Any, token: str) -> dict[str, Any]:
    r = client.post(
        "/api/v1/chat", json=run_input("t", f"r{time.monotonic_ns()}", QUESTION), headers=auth(token)
    )
    interrupt = sse(r.text)[-1]["outcome"]["interrupts"][0]
    return client.get(f"/api/v1/approvals/{interrupt['id']}", headers=auth(token)).json()  # type: ignore[no-any-return]


def test_pending_list_shows_evidence_and_only_an_approver_other_than_the_requester_decides(
    tmp_path: Path,
) -> None:
    with api(tmp_path) as (client, ctx):
        carol = ctx.auth.create("carol", "approver")  # may ask and approve, but not her own proposal
        dave = ctx.auth.create("dave", "operator")
        erin = ctx.auth.create("erin", "approver")
        approval = _pending(client, carol)
        listed = client.get("/api/v1/approvals", headers=auth(dave)).json()
        assert [a["id"] for a in listed] == [approval["id"]]
        assert listed[0]["evidence"] and listed[0]["evidence"][0]["id"] == "blocking_chains@sql-prod-01"
        assert listed[0]["origin"] == "replay" and listed[0]["requester"] == "carol"
        url = f"/api/v1/approvals/{approval['id']}/decision"
        assert client.post(url, json={"decision": "approve"}, headers=auth(dave)).status_code == 403  # role
        own = client.post(url, json={"decision": "approve"}, headers=auth(carol))
        assert own.status_code == 403 and "may not approve" in own.json()["detail"]
        stale = client.post(url, json={"decision": "approve", "fingerprint": "0" * 64}, headers=auth(erin))
        assert stale.status_code == 409
        ok = client.post(url, json={"decision": "reject", "comment": "not in business hours",
                                    "fingerprint": approval["fingerprint"]}, headers=auth(erin))  # fmt: skip
        assert ok.status_code == 200, ok.text
        doc = ok.json()
        assert doc["approval"]["status"] == "rejected" and doc["approval"]["decided_by"] == "erin"
        assert doc["approval"]["decided_at"] and doc["approval"]["comment"] == "not in business hours"
        assert doc["investigation_status"] == "rejected"
        again = client.post(url, json={"decision": "approve"}, headers=auth(erin))
        assert again.status_code == 409


def test_unanswered_proposals_expire(tmp_path: Path) -> None:
    with api(tmp_path, approval_ttl_minutes=0.001) as (client, ctx):
        token = ctx.auth.create("ann", "admin")
        approval = _pending(client, token)
        time.sleep(0.2)
        assert client.get("/api/v1/approvals", headers=auth(token)).json() == []
        assert (
            client.get(f"/api/v1/approvals/{approval['id']}", headers=auth(token)).json()["status"]
            == "expired"
        )
        inv = client.get(f"/api/v1/investigations/{approval['investigation_id']}", headers=auth(token)).json()
        assert inv["status"] == "expired"


def test_an_edited_checkpoint_voids_the_approval(tmp_path: Path) -> None:
    """Someone changes which session the paused investigation would kill: the fingerprint no longer
    matches the one stored and shown, so the decision is refused and the approval voided."""
    with api(tmp_path) as (client, ctx):
        asker = ctx.auth.create("asker", "operator")
        boss = ctx.auth.create("boss", "approver")
        approval = _pending(client, asker)
        config = {"configurable": {"thread_id": approval["investigation_id"]}}
        saver = ctx.service.graph.checkpointer
        tup = saver.get_tuple(config)  # edit the stored checkpoint in place, as an attacker would
        checkpoint = copy.deepcopy(tup.checkpoint)
        proposals = checkpoint["channel_values"]["proposals"]
        checkpoint["channel_values"]["proposals"] = [
            dict(p, target_ref={**p["target_ref"], "id": "1"}) for p in proposals
        ]
        saver.put(tup.parent_config or config, checkpoint, tup.metadata, {})
        assert ctx.service.graph.get_state(config).interrupts  # still paused at the gate
        r = client.post(
            f"/api/v1/approvals/{approval['id']}/decision", json={"decision": "approve"}, headers=auth(boss)
        )
        assert r.status_code == 409 and "fingerprint mismatch" in r.json()["detail"]
        assert (
            client.get(f"/api/v1/approvals/{approval['id']}", headers=auth(boss)).json()["status"]
            == "invalid"
        )


class Boom(BaseModel):
    """A type outside the allow-list; constructing it would leave a mark."""

    path: str

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        Path(self.path).write_text("constructed")


def test_the_checkpoint_serializer_revives_no_foreign_type(tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    blob = JsonPlusSerializer(allowed_msgpack_modules=True).dumps_typed(
        {"x": Boom.model_construct(path=str(mark))}
    )
    assert blob[0] == "msgpack" and isinstance(ormsgpack.unpackb(blob[1], ext_hook=lambda c, d: (c, d)), dict)
    loaded = strict_serializer().loads_typed(blob)
    assert not mark.exists() and not isinstance(loaded["x"], Boom)
