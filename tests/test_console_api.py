"""What the web console needs from the API, without a browser: the console served at `/`, pictures
and evidence rows in an investigation, the alerts list, signing in with a token, the scope; and the
CLI's compact pictures (sparklines, box-drawing trees, bars)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.cli.pictures import picture_lines, sparkline
from server.pictures import blocking_tree, for_report, series_picture
from server.web import STATIC
from tests.api_helpers import ALERT_FILE, DEMO, api, auth, run_input, sse, wait_for
from tests.conftest import ROOT
from tools.metrics.chart import MAX_POINTS, chart_points

DISK = ROOT / "evals" / "scenarios" / "metrics-disk-forecast-pg-archive.yaml"
CPU = ROOT / "evals" / "scenarios" / "metrics-cpu-step-change.yaml"
WAN = ROOT / "evals" / "scenarios" / "network-wan-uplink-saturation.yaml"


def ask(client: Any, headers: dict[str, str], question: str, thread: str = "t1") -> dict[str, Any]:
    """Ask through the chat (AG-UI over SSE) and return the stored investigation."""
    res = client.post("/api/v1/chat", json=run_input(thread, "r1", question), headers=headers)
    assert res.status_code == 200, res.text
    events = sse(res.text)
    inv_id = next(
        e["value"]["investigation_id"] for e in events if e.get("name") == "opscopilot.investigation"
    )
    report = next(e["value"] for e in events if e.get("name") == "opscopilot.report")
    assert report["pictures"] is not None and "evidence_rows" in report  # also on the AG-UI wire
    return wait_for(client, inv_id, headers)


def pictures_of(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p for p in doc["pictures"] if p["kind"] == kind]


# --- the console at / -------------------------------------------------------------------------


def test_the_console_is_served_at_the_root_with_its_assets_and_a_strict_policy(tmp_path: Path) -> None:
    assert (STATIC / "index.html").is_file(), "the committed console build is missing (scripts/setup)"
    with api(tmp_path) as (client, _):
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-cache"
        assert '<div id="app">' in page.text and "/assets/console.js" in page.text
        assert "http" not in page.text.replace("http://www.w3.org/2000/svg", ""), "nothing from elsewhere"
        bundle = client.get("/assets/console.js", headers={"Accept-Encoding": "gzip"})
        assert bundle.status_code == 200 and bundle.headers["content-encoding"] == "gzip"
        assert bundle.headers["etag"] and bundle.headers["cache-control"] == "no-cache"
        assert client.get("/assets/console.css").status_code == 200
        described = client.get("/", headers={"Accept": "application/json"}).json()
        assert described["api"] == "/api/v1"


def test_the_console_bundle_loads_nothing_from_a_cdn() -> None:
    code = (STATIC / "assets" / "console.js").read_text()
    for cdn in ("unpkg.com", "cdn.jsdelivr", "cdnjs", "esm.sh", "skypack"):
        assert cdn not in code


# --- pictures and evidence rows ---------------------------------------------------------------


def test_the_demo_investigation_carries_its_blocking_tree_wait_bars_and_rows(tmp_path: Path) -> None:
    with api(tmp_path) as (client, ctx):
        op = auth(ctx.auth.create("alice", "operator"))
        doc = ask(client, op, "Why is checkout timing out on sql-prod-01?")
    (tree,) = pictures_of(doc, "blocking_tree")
    head = tree["head"]
    assert head["session"] == 57 and head["who"] == "svc_batch@batch-03" and tree["blocked"] == 3
    children = {c["session"]: c for c in head["children"]}
    assert set(children) == {88, 102}
    assert [c["session"] for c in children[88]["children"]] == [91]
    assert children[88]["wait_type"] == "LCK_M_U" and children[88]["wait_ms"] == 61234.0
    number = tree["finding"]
    finding = next(f for f in doc["findings"] if f["number"] == number)
    assert finding["kind"] == "blocking_chain" and tree["evidence_ref"] in finding["evidence_refs"]

    (waits,) = pictures_of(doc, "wait_profile")
    assert waits["bars"][0]["cause"] == "locks" and waits["bars"][0]["types"] == ["LCK_M_U", "LCK_M_S"]
    assert waits["bars"][0]["share_pct"] == pytest.approx(96.0, abs=0.1)

    rows = doc["evidence_rows"][tree["evidence_ref"]]
    assert len(rows) == 5 and {r["session_id"] for r in rows} >= {57, 88, 91, 102}


def test_a_disk_forecast_runs_from_the_latest_point_to_the_threshold(tmp_path: Path) -> None:
    with api(tmp_path, scenario=DISK) as (client, ctx):
        op = auth(ctx.auth.create("alice", "operator"))
        doc = ask(
            client, op, "How long until /var/lib/postgresql on pg-archive-01 is full at the current rate?"
        )
    (chart,) = [p for p in pictures_of(doc, "series") if p["forecast"]]
    f = chart["forecast"]
    assert chart["threshold"] == 100.0 and f["to_value"] == 100.0
    assert f["from_value"] == chart["points"][-1][1] == 74.7
    assert datetime.fromisoformat(f["to_ts"]) > datetime.fromisoformat(chart["points"][-1][0])
    assert len(chart["points"]) == 31 and "path=/var/lib/postgresql" in chart["label"]


def test_a_step_change_is_drawn_with_its_time_and_the_baseline_before_it(tmp_path: Path) -> None:
    with api(tmp_path, scenario=CPU) as (client, ctx):
        op = auth(ctx.auth.create("alice", "operator"))
        doc = ask(client, op, "CPU on search-node-03 jumped this afternoon. When did it start?")
    user = next(p for p in pictures_of(doc, "series") if "usage_user" in p["label"])
    step, band = user["step"], user["baseline"]
    assert step["at"].startswith("2026-06-17T13:40") and step["after"] > 3 * step["before"]
    assert band["until"] == step["at"] and band["low"] < step["before"] < band["high"] < step["after"]


def test_interface_rates_are_drawn_once_per_device(tmp_path: Path) -> None:
    with api(tmp_path, scenario=WAN) as (client, ctx):
        op = auth(ctx.auth.create("alice", "operator"))
        doc = ask(client, op, "Could it be the WAN link on br12-rtr-01?")
    (rates,) = pictures_of(doc, "interfaces")
    gi0 = next(i for i in rates["interfaces"] if i["name"] == "GigabitEthernet0/0/0")
    assert gi0["in_util_pct"] == 97.0 and gi0["discard_rate"] == 19.8 and "saturated_in" in gi0["problems"]


def test_metric_points_are_thinned_keeping_spikes_and_the_latest_value() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    points = [(t0 + timedelta(minutes=i), 10.0) for i in range(5000)]
    points[1234] = (points[1234][0], 99.0)  # one spike
    kept = chart_points(points)
    assert len(kept) <= MAX_POINTS + 1
    assert max(v for _, v in kept) == 99.0 and kept[-1][0] == "2026-01-04T11:19:00Z"
    assert [t for t, _ in kept] == sorted(t for t, _ in kept)
    assert len(chart_points(points[:10])) == 10


def test_a_deadlock_cycle_is_drawn_once_and_marked() -> None:
    blocked = [
        {"session_id": 2, "blocked_by": 1, "wait_time_ms": 5000, "wait_type": "LCK_M_X"},
        {"session_id": 1, "blocked_by": 2, "wait_time_ms": 4000, "wait_type": "LCK_M_X"},
    ]
    f = {
        "kind": "blocking_chain",
        "entity": "db",
        "data": {"head_session_id": 1, "head": None, "blocked": blocked, "deadlock": True, "depth": 1},
    }
    tree = blocking_tree(f, 1, "E1")
    assert tree is not None and tree.deadlock
    (two,) = tree.head.children
    assert two.session == 2 and [c.cycle_to for c in two.children] == [1]
    assert "↺ waits for session 1 (cycle)" in "\n".join(picture_lines([tree]))


def test_a_series_without_enough_points_is_not_drawn() -> None:
    f = {
        "kind": "metric_anomaly",
        "entity": "x",
        "title": "t",
        "data": {"points": [["2026-01-01T00:00:00Z", 1]]},
    }
    assert series_picture(f, 1, None) is None
    assert for_report({"findings": [], "evidence": []}, {}) == {}


# --- the CLI shows the same compactly ---------------------------------------------------------


def test_the_cli_sketches_the_demo_tree_and_bars(tmp_path: Path) -> None:
    with api(tmp_path) as (client, ctx):
        op = auth(ctx.auth.create("alice", "operator"))
        doc = ask(client, op, "Why is checkout timing out on sql-prod-01?")
    text = "\n".join(picture_lines(doc["pictures"]))
    assert "head blocker session 57 · svc_batch@batch-03" in text
    assert "├─ session 88" in text and "│  └─ session 91" in text and "└─ session 102" in text
    assert "locks" in text and "█" in text
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "▄▄▄" and len(sparkline(list(range(500)), width=40)) == 40


def test_ask_on_the_cli_prints_the_pictures_after_the_answer(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCOPILOT_")}
    env |= {"OPSCOPILOT_DATA_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    question = "How long until /var/lib/postgresql on pg-archive-01 is full?"
    cmd = [sys.executable, "-m", "server.cli", "ask", question, "--scenario", str(DISK), "--model", "none"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    pictures = done.stdout.split("\nPictures:\n", 1)[1]
    assert "path=/var/lib/postgresql" in pictures and "┄┄→ 100%" in pictures
    assert any(ch in pictures for ch in "▁▂▃▄▅▆▇█")


# --- alerts, sign-in, scope -------------------------------------------------------------------


def test_received_alerts_are_listed_with_their_investigations_headline(tmp_path: Path) -> None:
    with api(tmp_path) as (client, ctx):
        op = auth(ctx.auth.create("am", "operator"))
        viewer = auth(ctx.auth.create("v", "viewer"))
        assert client.get("/api/v1/alerts", headers=viewer).json() == []
        body = json.loads(ALERT_FILE.read_text())
        posted = client.post("/api/v1/alerts/alertmanager", json=body, headers=op).json()
        client.post("/api/v1/alerts/alertmanager", json=body, headers=op)  # a repeat: count 2
        inv_id = posted["alerts"][0]["investigation_id"]
        wait_for(client, inv_id, op)
        (row,) = client.get("/api/v1/alerts", headers=viewer).json()
        assert row["source"] == "alertmanager" and row["status"] == "firing" and row["count"] == 2
        assert row["name"] == "CheckoutLatencyHigh" and row["entity"] == "sql-prod-01"
        assert row["severity"] == "critical" and row["first_seen"] <= row["last_seen"]
        assert row["investigation_id"] == inv_id and row["investigation_status"] == "awaiting_approval"
        assert row["headline"].startswith("Most likely cause: Blocking chain on sql-prod-01")
        assert client.get("/api/v1/alerts?status=resolved", headers=viewer).json() == []
        assert client.get("/api/v1/alerts?status=nonsense", headers=viewer).status_code == 422
        assert client.get("/api/v1/alerts").status_code == 401


def test_an_api_token_becomes_a_session_cookie_and_signing_out_ends_it(tmp_path: Path) -> None:
    with api(tmp_path) as (client, ctx):
        token = ctx.auth.create("bob", "approver")
        assert client.post("/api/v1/auth/session", headers=auth("oc_wrong-token")).status_code == 401
        assert client.post("/api/v1/auth/session").status_code == 401
        signed = client.post("/api/v1/auth/session", headers=auth(token))
        assert signed.status_code == 200 and signed.json() == {
            "name": "bob",
            "role": "approver",
            "auth": "session",
        }
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and token not in cookie
        assert client.get("/api/v1/auth/whoami").json()["auth"] == "session"  # the cookie alone
        session = client.cookies.get("opscopilot_session")
        assert session is not None
        assert client.post("/api/v1/auth/signout").status_code == 204
        client.cookies.set("opscopilot_session", session)
        assert client.get("/api/v1/auth/whoami").status_code == 401  # revoked, not just forgotten
        assert client.get("/api/v1/auth/whoami", headers=auth(token)).status_code == 200  # API token intact
        link = ctx.auth.signin_link_token("carol", "viewer")
        assert (
            client.post("/api/v1/auth/session", headers=auth(link)).status_code == 401
        )  # links are not tokens


def test_info_says_what_is_investigated(tmp_path: Path) -> None:
    with api(tmp_path) as (client, ctx):
        viewer = auth(ctx.auth.create("v", "viewer"))
        info = client.get("/api/v1/info", headers=viewer).json()
        assert info["scope"] == "replay" and info["scenario"] == DEMO.stem and info["authentication"]
        assert info["title"] and info["model"] == "none"
        assert client.get("/api/v1/info").status_code == 401
    with api(tmp_path / "open", no_auth=True) as (client, _):
        assert client.get("/api/v1/info").json()["authentication"] is False
