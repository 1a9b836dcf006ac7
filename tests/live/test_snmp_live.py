"""Live SNMP: SnmpPoller against real agents on loopback.

- Net-SNMP's snmpd (Debian's /usr/sbin/snmpd, started here on a free UDP port with its own
  config): v2c and v3 authPriv (SHA/AES-128 and SHA-256/AES-256) reading this machine's real
  interfaces, wrong v3 keys, doctor().
- A scripted pysnmp command responder (tests/live/agents/scripted_snmp.py) whose IF-MIB counters
  move between the poller's two samples: rising input errors, a link down while admin up, a port
  shut on purpose, a 10G port on 64-bit counters. Judged through the network view tool.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.live import unavailable
from tests.live.agents.scripted_snmp import DOWN, ScriptedInterface, ScriptedSnmpAgent
from tests.live.agents.snmpd import Snmpd, start_snmpd
from tools.estate import SnmpDeviceConfig
from tools.network.snmp import AUTH_FIX, SnmpPoller
from tools.network.views import interface_health
from tools.sources import SourceError, Sources, ToolContext

pytestmark = pytest.mark.live
INTERVAL = 1.0
NOW = datetime.now(UTC)


@pytest.fixture(scope="session")
def snmpd_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    agent = start_snmpd(tmp_path_factory.mktemp("snmpd"))
    if isinstance(agent, str):
        unavailable(agent)
        raise AssertionError("unreachable")  # unavailable() skips or fails
    yield agent
    agent.stop()


@pytest.fixture
def snmpd(snmpd_agent: Snmpd) -> Snmpd:
    """The session's snmpd, restarted on its port if something (`pkill -x snmpd`) ended it."""
    snmpd_agent.ensure_running()
    return snmpd_agent


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedSnmpAgent]:
    interfaces = [
        ScriptedInterface(1, "Gi1/0/1"),
        ScriptedInterface(2, "Gi1/0/2", in_errors=1200, in_errors_per_s=40.0),
        ScriptedInterface(3, "Gi1/0/3", oper=DOWN, in_octets_per_s=0, out_octets_per_s=0),
        ScriptedInterface(4, "Gi1/0/4", admin=DOWN, oper=DOWN, speed_mbps=100, high_capacity=False),
        ScriptedInterface(5, "Te1/1/1", speed_mbps=10_000, in_octets=2**32 + 7, in_octets_per_s=1.0e8),
    ]
    with ScriptedSnmpAgent(interfaces, community="scripted-ro", sys_name="edge-sw-01") as agent:
        yield agent


def v2c(name: str, port: int, community: str, **kw: object) -> SnmpDeviceConfig:
    return SnmpDeviceConfig.model_validate(
        {"name": name, "address": "127.0.0.1", "port": port, "community": community,
         "sample_interval_s": INTERVAL, "timeout_s": 1.0, "retries": 1, **kw}
    )  # fmt: skip


def v3(snmpd: Snmpd, name: str, user: str, **override: str) -> SnmpDeviceConfig:
    auth, auth_key, priv, priv_key = snmpd.users[user]
    return SnmpDeviceConfig(
        name=name,
        address="127.0.0.1",
        port=snmpd.port,
        version="3",
        user=user,
        auth_protocol=override.get("auth_protocol", auth.replace("-", "")),  # type: ignore[arg-type]
        auth_key=SecretStr(override.get("auth_key", auth_key)),
        priv_protocol=override.get("priv_protocol", priv.replace("-", "")),  # type: ignore[arg-type]
        priv_key=SecretStr(override.get("priv_key", priv_key)),
        sample_interval_s=INTERVAL,
        timeout_s=1.0,
        retries=0,
    )


def ctx_for(poller: SnmpPoller) -> ToolContext:
    return ToolContext(
        sources=Sources(snmp=poller, label="live"),
        now=NOW,
        start=NOW - timedelta(hours=1),
        end=NOW,
        history_start=NOW - timedelta(days=7),
    )


# --- real snmpd ------------------------------------------------------------------------------


def test_snmpd_v2c_reads_this_machines_interfaces(snmpd: Snmpd) -> None:
    """Real snmpd over v2c: the interfaces are the kernel's own, and the loopback's octet counters
    rise between the two samples (the poll itself travels over lo). snmpd caches ifTable for ~3 s,
    so this poll waits 3.5 s between samples."""
    interval = 3.5
    with SnmpPoller([v2c("host", snmpd.port, snmpd.community, sample_interval_s=interval)]) as poller:
        started = time.monotonic()
        poll = poller.poll("host")
        took = time.monotonic() - started
    kernel = {p.name for p in Path("/sys/class/net").iterdir()}
    names = {i.ifDescr for i in poll.current.interfaces}
    assert "lo" in names and names <= kernel, (names, kernel)
    assert poll.current.sysName == socket.gethostname()
    assert poll.current.sysDescr and "Linux" in poll.current.sysDescr
    assert poll.age_s is not None and interval * 0.95 <= poll.age_s <= interval + 1.0
    assert took < interval + 3
    assert poll.previous is not None and poll.current.previous_age_s == poll.age_s
    lo = next(i for i in poll.current.interfaces if i.ifDescr == "lo")
    lo_before = next(i for i in poll.previous.interfaces if i.ifDescr == "lo")
    assert lo.ifAdminStatus == "up" and lo.ifOperStatus == "up"
    assert lo.ifInOctets is not None and lo_before.ifInOctets is not None
    assert lo.ifInOctets > lo_before.ifInOctets
    assert lo.ifInErrors == 0 and lo.ifOutErrors == 0
    assert (poll.current.sysUpTime or 0) >= (poll.previous.sysUpTime or 0)


@pytest.mark.parametrize("user", ["opsv3", "opsv3strong"])
def test_snmpd_v3_authpriv(snmpd: Snmpd, user: str) -> None:
    """Real snmpd over SNMPv3 authPriv: SHA + AES-128, and SHA-256 + AES-256."""
    with SnmpPoller([v3(snmpd, "host-v3", user)]) as poller:
        poll = poller.poll("host-v3")
        (check,) = poller.doctor()
    assert "lo" in {i.ifDescr for i in poll.current.interfaces}
    assert poll.age_s is not None and poll.age_s >= INTERVAL * 0.9
    assert check.ok and check.reachable and check.authenticated and check.permissions_ok
    assert check.latency_ms is not None and check.latency_ms > 0
    assert check.target == f"127.0.0.1:{snmpd.port}" and "interfaces" in check.detail


@pytest.mark.parametrize(
    ("override", "why"),
    [({"auth_key": "not-the-auth-key"}, "digest"), ({"priv_key": "not-the-priv-key"}, "privacy")],
)
def test_snmpd_v3_wrong_keys_are_reported_as_authentication(
    snmpd: Snmpd, override: dict[str, str], why: str
) -> None:
    """Real snmpd, wrong v3 auth key (the agent reports a wrong digest) and wrong privacy key (the
    agent stays silent; a noAuthNoPriv probe shows it is there): both say what to check."""
    cfg = v3(snmpd, "host-v3", "opsv3", **override)
    with SnmpPoller([cfg]) as poller:
        with pytest.raises(SourceError) as err:
            poller.poll("host-v3")
        (check,) = poller.doctor()
    assert AUTH_FIX in str(err.value) and why in str(err.value).lower()
    assert "opsPrivKey" not in str(err.value) and "not-the" not in str(err.value)  # no secrets
    assert check.reachable and check.authenticated is False and not check.ok
    assert AUTH_FIX in check.fix


def test_unreachable_device_fails_within_its_timeouts() -> None:
    """Nothing listens on the port: the poll fails after timeout x tries, naming what to check."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but never read: requests vanish like at a dead device
        cfg = v2c("ghost", port, "public", timeout_s=0.5, retries=1)
        with SnmpPoller([cfg]) as poller:
            started = time.monotonic()
            with pytest.raises(SourceError, match=r"no SNMP response within 0\.5 s x 2 tries") as err:
                poller.poll("ghost")
            took = time.monotonic() - started
            (check,) = poller.doctor()
    assert 0.9 <= took < 3.0, took
    assert "firewall" in str(err.value) and "community" in str(err.value)
    assert not check.reachable and "UDP" in check.fix


def test_unknown_device_lists_the_known_ones(snmpd: Snmpd) -> None:
    with SnmpPoller([v2c("host", snmpd.port, snmpd.community)]) as poller:
        with pytest.raises(SourceError, match="known devices: host"):
            poller.poll("nope")
        assert poller.devices() == {"host": "127.0.0.1"}


# --- scripted pysnmp agent -----------------------------------------------------------------------


def test_interface_health_finds_rising_errors_and_the_down_link(scripted: ScriptedSnmpAgent) -> None:
    """The pysnmp agent: Gi1/0/2's ifInErrors rise ~40/s between the two samples, Gi1/0/3 is oper
    down while admin up, Gi1/0/4 is shut on purpose. The view tool names the first two and does
    not blame the third."""
    with SnmpPoller([v2c("edge-sw-01", scripted.port, "scripted-ro")]) as poller:
        result = interface_health.run(ctx_for(poller), "edge-sw-01")
    (ev,) = result.evidence
    assert ev.error is None and ev.row_count == 5
    assert "polled 1 s apart" in ev.summary
    by_kind = {f.kind: f for f in result.findings}
    errors = by_kind["interface_errors"]
    assert "Gi1/0/2" in errors.title and "input errors rising" in errors.title
    assert errors.severity.value == "critical" and 30 <= errors.data["in_error_rate"] <= 50
    down = by_kind["interface_down"]
    assert "Gi1/0/3" in down.title and "down while admin up" in down.title
    assert down.severity.value == "critical"
    assert not any("Gi1/0/4" in f.title for f in result.findings)
    assert "administratively down, not a fault (Gi1/0/4)" in down.detail
    assert "device_rebooted" not in by_kind  # up 12 days
    rows = {r["name"]: r for r in ev.rows}
    assert rows["Gi1/0/4"]["state"] == "admin_down" and rows["Gi1/0/4"]["problems"] == []
    assert rows["Gi1/0/1"]["problems"] == [] and rows["Gi1/0/1"]["in_util_pct"] == pytest.approx(0.1, rel=0.2)


def test_64_bit_counters_and_high_speed_win(scripted: ScriptedSnmpAgent) -> None:
    """Te1/1/1 is a 10G port past 2^32 octets: ifHCInOctets and ifHighSpeed are used, so
    utilisation is ~8% of 10 Gbit/s, not a wrapped 32-bit counter against a capped ifSpeed."""
    with SnmpPoller([v2c("edge-sw-01", scripted.port, "scripted-ro")]) as poller:
        poll = poller.poll("edge-sw-01")
    te = next(i for i in poll.current.interfaces if i.ifDescr == "Te1/1/1")
    assert te.ifSpeed == 10e9 and te.ifInOctets is not None and te.ifInOctets > 2**32
    assert poll.previous is not None and poll.age_s
    before = next(i for i in poll.previous.interfaces if i.ifIndex == 5)
    assert before.ifInOctets is not None
    rate_bps = (te.ifInOctets - before.ifInOctets) * 8 / poll.age_s
    assert rate_bps / te.ifSpeed == pytest.approx(0.08, rel=0.15)
    slow = next(i for i in poll.current.interfaces if i.ifDescr == "Gi1/0/4")
    assert slow.ifSpeed == 100e6  # no ifXTable row: ifSpeed is used


def test_wrong_community_is_silence(scripted: ScriptedSnmpAgent) -> None:
    dropped = scripted.dropped
    with SnmpPoller([v2c("edge-sw-01", scripted.port, "guess", timeout_s=0.3, retries=0)]) as poller:
        result = interface_health.run(ctx_for(poller), "edge-sw-01")
    (ev,) = result.evidence
    assert ev.error and "community" in ev.error and not result.findings
    assert scripted.dropped > dropped


def test_polls_from_threads_and_from_inside_an_event_loop(scripted: ScriptedSnmpAgent, snmpd: Snmpd) -> None:
    """Blocking poll() works from several threads at once (they overlap on the poller's own loop)
    and from code that already runs an asyncio loop."""
    devices = [v2c("edge-sw-01", scripted.port, "scripted-ro"), v2c("host", snmpd.port, snmpd.community)]
    with SnmpPoller(devices) as poller:
        results: dict[str, int] = {}

        def poll(name: str) -> None:
            results[name] = len(poller.poll(name).current.interfaces)

        started = time.monotonic()
        threads = [threading.Thread(target=poll, args=(d.name,)) for d in devices]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert time.monotonic() - started < 2 * INTERVAL + 0.5  # overlapped, not back to back
        assert results["edge-sw-01"] == 5 and results["host"] >= 1

        async def inside_a_loop() -> int:
            return len(poller.poll("edge-sw-01").current.interfaces)

        assert asyncio.run(inside_a_loop()) == 5


def test_doctor_probes_every_device_at_once(snmpd: Snmpd, scripted: ScriptedSnmpAgent) -> None:
    """Two dead devices cost their timeouts once, not one after the other, next to live ones."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        devices = [
            v2c("host", snmpd.port, snmpd.community),
            v2c("edge-sw-01", scripted.port, "scripted-ro"),
            v2c("dead-1", dead, "public", timeout_s=1.0, retries=0),
            v2c("dead-2", dead, "public", timeout_s=1.0, retries=0),
        ]
        with SnmpPoller(devices) as poller:
            started = time.monotonic()
            checks = {c.source: c for c in poller.doctor()}
            took = time.monotonic() - started
    assert took < 1.8, took
    assert checks["snmp:host"].ok and checks["snmp:edge-sw-01"].ok
    assert checks["snmp:edge-sw-01"].detail == "sysName edge-sw-01, 5 interfaces, v2c"
    assert not checks["snmp:dead-1"].reachable and not checks["snmp:dead-2"].reachable


def test_a_silent_device_opens_its_circuit() -> None:
    """Three polls in a row without an answer open the device's circuit: the next fails at once,
    and doctor shows it (while a wrong key, which is an answer, never would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        cfg = v2c("ghost", s.getsockname()[1], "public", timeout_s=0.2, retries=0)
        with SnmpPoller([cfg]) as poller:
            for _ in range(3):
                with pytest.raises(SourceError, match="no SNMP response"):
                    poller.poll("ghost")
            started = time.monotonic()
            with pytest.raises(SourceError, match=r"not polled: circuit open after 3 timeouts"):
                poller.poll("ghost")
            assert time.monotonic() - started < 0.1
            (check,) = poller.doctor()
    assert check.circuit == "open" and "circuit open" in check.detail
