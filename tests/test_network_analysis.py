"""SNMP interface analysis and the network view tool, against hand-worked rates and the CRC world."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from tools.network import analysis as an
from tools.network.views import NETWORK_TOOLS, interface_health
from tools.replay import ReplaySnmp
from tools.sources import DevicePoll, SourceError, Sources, ToolContext
from tools.world import DeviceSample, Interface, SnmpDevice, World, parse_ts

EXAMPLES = Path(__file__).resolve().parents[2].joinpath("shared/scenarios/examples")
NOW = parse_ts("2026-06-02T14:30:00Z")


def crc_world() -> World:
    return World.model_validate(yaml.safe_load((EXAMPLES / "network-crc-01.yaml").read_text())["world"])


def iface(index: int = 1, **kw: object) -> Interface:
    fields: dict[str, object] = {"ifIndex": index, "ifDescr": f"Gi0/{index}", "ifSpeed": 1e9, **kw}
    return Interface.model_validate(fields)


def ctx_for(snmp: object) -> ToolContext:
    return ToolContext(
        sources=Sources(snmp=snmp),  # type: ignore[arg-type]
        now=NOW,
        start=NOW - timedelta(hours=6),
        end=NOW,
        history_start=NOW - timedelta(days=7),
    )


# --- analysis -----------------------------------------------------------------------------------


def test_crc_world_rates_by_hand() -> None:
    dev = crc_world().snmp["core-sw-01"]
    health = an.assess_device(DevicePoll("core-sw-01", dev, dev.previous, dev.previous_age_s))
    by_index = {h.if_index: h for h in health.interfaces}
    gi24 = by_index[24]
    # in errors 184,220 - 112,020 = 72,200 in 600 s = 120.33/s (>= 10/s: critical)
    assert gi24.in_errors_delta == 72_200 and gi24.in_error_rate == pytest.approx(120.333, abs=1e-3)
    # discards 3,120 - 2,010 = 1,110 -> 1.85/s
    assert gi24.in_discards_delta == 1_110 and gi24.discard_rate == pytest.approx(1.85)
    # octets 99,123,456,789 - 99,023,456,789 = 1e8 -> 1e8 x 8 / 600 / 1e9 x 100 = 0.1333%
    assert gi24.in_util_pct == pytest.approx(0.13333, abs=1e-5)
    assert gi24.problems == ["input_errors", "discards"] and gi24.severity == "critical"
    # Gi1/0/23: 12 errors in both polls -> delta 0; Te1/1/1: 1e9 octets on 10 Gbit/s -> 0.1333%
    assert by_index[23].problems == [] and by_index[23].in_errors_delta == 0
    assert by_index[49].problems == [] and by_index[49].out_util_pct == pytest.approx(0.13333, abs=1e-5)
    # sysUpTime 912,345,600 hundredths = 9,123,456 s = 105.6 days: no reboot
    assert not health.rebooted and health.uptime_s == pytest.approx(9_123_456)


def test_admin_down_is_not_a_fault() -> None:
    h = an.assess_interface(iface(ifAdminStatus="down", ifOperStatus="down"), None, None)
    assert h.state == "admin_down" and h.problems == [] and h.severity == "info"


def test_admin_up_oper_down_is_a_fault() -> None:
    h = an.assess_interface(iface(ifOperStatus="down"), iface(), 60)
    assert h.state == "down" and h.problems == ["link_down"] and h.severity == "critical"
    lower = an.assess_interface(iface(ifOperStatus="lowerLayerDown"), None, None)
    assert lower.problems == ["link_down"]


def test_counter_reset_is_ignored() -> None:
    h = an.assess_interface(iface(ifInErrors=10), iface(ifInErrors=1_000), 60)
    assert h.counter_reset and h.in_errors_delta is None and h.in_error_rate is None and h.problems == []
    assert an.counter_delta(5, 7) == (None, True)
    assert an.counter_delta(7, 5) == (2, False)
    assert an.counter_delta(None, 5) == (None, False)


def test_error_rate_thresholds() -> None:
    # 30 output errors in 60 s = 0.5/s: below 1/s, noise
    quiet = an.assess_interface(iface(ifOutErrors=130), iface(ifOutErrors=100), 60)
    assert quiet.out_error_rate == pytest.approx(0.5) and quiet.problems == []
    # 120 in 60 s = 2/s: warning; 1,200 in 60 s = 20/s: critical
    warn = an.assess_interface(iface(ifOutErrors=220), iface(ifOutErrors=100), 60)
    assert warn.problems == ["output_errors"] and warn.severity == "warning"
    crit = an.assess_interface(iface(ifInErrors=1_300), iface(ifInErrors=100), 60)
    assert crit.severity == "critical"


def test_saturation_from_octets() -> None:
    # 100 Mbit/s link, 118,750,000 octets in 10 s = 95 Mbit/s = 95%
    h = an.assess_interface(iface(ifSpeed=1e8, ifInOctets=118_750_000), iface(ifSpeed=1e8, ifInOctets=0), 10)
    assert h.in_util_pct == pytest.approx(95.0) and h.problems == ["saturated_in"] and h.severity == "warning"


def test_without_previous_poll_rates_are_unknown() -> None:
    h = an.assess_interface(iface(ifInErrors=5_000), None, None)
    assert h.in_error_rate is None and h.problems == [] and h.in_errors == 5_000


def test_reboot_detection() -> None:
    fresh = SnmpDevice(address="10.0.0.1", sysUpTime=50_000)  # 500 s
    assert an.assess_device(DevicePoll("sw", fresh)).rebooted
    older = SnmpDevice(address="10.0.0.1", sysUpTime=90_000_000)  # 10.4 days, but lower than before
    poll = DevicePoll("sw", older, DeviceSample(sysUpTime=95_000_000), 600)
    health = an.assess_device(poll)
    assert health.rebooted and "backwards" in (health.reboot_reason or "")
    steady = DevicePoll("sw", older, DeviceSample(sysUpTime=89_940_000), 600)
    assert not an.assess_device(steady).rebooted


# --- view tool ----------------------------------------------------------------------------------


def test_interface_health_on_the_crc_world() -> None:
    result = interface_health(ctx_for(ReplaySnmp(crc_world())), "core-sw-01")
    (ev,) = result.evidence
    assert ev.id == "interface_health@core-sw-01" and ev.row_count == 3 and ev.error is None
    (finding,) = result.findings  # Gi1/0/23 and Te1/1/1 are clean
    assert finding.kind == "interface_errors" and finding.severity == "critical"
    assert finding.title == (
        "GigabitEthernet1/0/24 (ifIndex 24) on core-sw-01: input errors rising 72,200 in 600 s (120.3/s), "
        "discards 1,110 — likely CRC / physical layer (cable, optic, duplex)"
    )
    assert "GigabitEthernet1/0/23, TenGigabitEthernet1/1/1" in finding.detail
    assert finding.evidence == [ev.id]


class FakeSnmp:
    def __init__(self, devices: dict[str, SnmpDevice], fail: bool = False) -> None:
        self._devices, self.fail = devices, fail

    def devices(self) -> dict[str, str]:
        if self.fail:
            raise SourceError("snmp timeout")
        return {name: d.address for name, d in self._devices.items()}

    def poll(self, device: str) -> DevicePoll:
        d = self._devices[device]
        return DevicePoll(device, d, d.previous, d.previous_age_s)


def test_healthy_device_with_a_shut_port() -> None:
    up = iface(1, ifInErrors=3)
    shut = iface(2, ifAdminStatus="down", ifOperStatus="down")
    dev = SnmpDevice(
        address="10.0.0.2",
        sysUpTime=500_000_000,
        interfaces=[up, iface(3), shut],
        previous=DeviceSample(interfaces=[up, iface(3), shut]),
        previous_age_s=300,
    )
    (finding,) = interface_health(ctx_for(FakeSnmp({"acc-sw-02": dev})), "10.0.0.2").findings
    assert finding.kind == "interfaces_healthy" and finding.severity == "info"
    # asked by address, answered with the device's name
    assert (
        finding.title == "All 2 enabled interfaces on acc-sw-02 up with no errors (1 administratively down)"
    )
    assert "Gi0/2" in finding.detail


def test_link_down_and_reboot_findings() -> None:
    dev = SnmpDevice(
        address="10.0.0.3", sysUpTime=12_000, interfaces=[iface(1, ifOperStatus="down"), iface(2)]
    )
    result = interface_health(ctx_for(FakeSnmp({"edge-1": dev})), "edge-1")
    assert [f.kind for f in result.findings] == ["device_rebooted", "interface_down"]
    assert "Gi0/1 (ifIndex 1) on edge-1 is down while admin up" in result.findings[1].title


@pytest.mark.parametrize(
    ("snmp", "entity", "message"),
    [
        (FakeSnmp({}, fail=True), "core-sw-01", "snmp timeout"),
        (None, "core-sw-01", "no SNMP source"),
        (FakeSnmp({"a": SnmpDevice(address="1.1.1.1")}), "core-sw-01", "known devices: a"),
    ],
)
def test_failures_become_evidence(snmp: object, entity: str, message: str) -> None:
    result = NETWORK_TOOLS[0](ctx_for(snmp), entity)
    (ev,) = result.evidence
    assert ev.error and message in ev.error and result.findings == []
