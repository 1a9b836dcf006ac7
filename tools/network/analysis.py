"""SNMP analyzers: interface state, error/discard rates, utilisation and device reboots from two polls."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.base import Severity
from tools.sources import DevicePoll
from tools.world import Interface

ERROR_RATE_WARN = 1.0  # errors per second: below this a few errors are noise, not a fault
ERROR_RATE_CRIT = 10.0
DISCARD_RATE_WARN = 1.0
SATURATED_PCT = 90.0
RECENT_REBOOT_S = 3600.0  # an uptime below an hour means the device restarted recently
FAULT_OPER = {"down", "lowerLayerDown"}


class InterfaceHealth(BaseModel):
    """One interface judged from the current poll and, when there is one, the previous poll."""

    if_index: int
    name: str
    admin: str
    oper: str
    speed_bps: float | None = None
    state: str  # up | down (admin up, oper down: a fault) | admin_down (shut on purpose) | other
    in_errors: float | None = None  # cumulative counters as polled
    out_errors: float | None = None
    in_discards: float | None = None
    in_errors_delta: float | None = None  # since the previous poll; None without one or on reset
    out_errors_delta: float | None = None
    in_discards_delta: float | None = None
    in_error_rate: float | None = None  # per second
    out_error_rate: float | None = None
    discard_rate: float | None = None
    in_util_pct: float | None = None
    out_util_pct: float | None = None
    counter_reset: bool = False  # a counter went backwards (wrap or reboot): that delta is ignored
    problems: list[str] = Field(default_factory=list)
    severity: Severity = Severity.INFO


class DeviceHealth(BaseModel):
    device: str
    address: str | None = None
    sys_name: str | None = None
    uptime_s: float | None = None
    age_s: float | None = None  # seconds between the two polls
    rebooted: bool = False
    reboot_reason: str | None = None
    interfaces: list[InterfaceHealth] = Field(default_factory=list)


def counter_delta(current: float | None, previous: float | None) -> tuple[float | None, bool]:
    """(delta, reset): None when a sample is missing; a negative delta is a wrap or reset, ignored."""
    if current is None or previous is None:
        return None, False
    delta = current - previous
    return (None, True) if delta < 0 else (delta, False)


def _per_second(delta: float | None, age_s: float | None) -> float | None:
    return None if delta is None or not age_s or age_s <= 0 else delta / age_s


def _util(delta: float | None, age_s: float | None, speed: float | None) -> float | None:
    rate = _per_second(delta, age_s)
    return None if rate is None or not speed else rate * 8 / speed * 100


def _worst(a: Severity, b: Severity) -> Severity:
    return a if a.rank >= b.rank else b


def assess_interface(current: Interface, previous: Interface | None, age_s: float | None) -> InterfaceHealth:
    """State, rates and problems of one interface.

    admin up + oper down = fault (critical); admin down = shut on purpose (info, never a fault).
    Rates are counter deltas / `age_s`; utilisation = octet delta x 8 / age / ifSpeed. Errors
    are rising when the delta is positive at >= 1/s (warning) or >= 10/s (critical).
    """
    h = InterfaceHealth(
        if_index=current.ifIndex,
        name=current.ifDescr,
        admin=current.ifAdminStatus,
        oper=current.ifOperStatus,
        speed_bps=current.ifSpeed,
        state="up",
        in_errors=current.ifInErrors,
        out_errors=current.ifOutErrors,
        in_discards=current.ifInDiscards,
    )
    if current.ifAdminStatus != "up":
        h.state = "admin_down"
        return h
    if current.ifOperStatus in FAULT_OPER:
        h.state = "down"
        h.problems.append("link_down")
        h.severity = Severity.CRITICAL
        return h
    if current.ifOperStatus != "up":
        h.state = current.ifOperStatus
        h.problems.append(f"oper_{current.ifOperStatus}")
        h.severity = Severity.WARNING
    if previous is None:
        return h
    resets = []
    pairs = {
        "in_errors": (current.ifInErrors, previous.ifInErrors),
        "out_errors": (current.ifOutErrors, previous.ifOutErrors),
        "in_discards": (current.ifInDiscards, previous.ifInDiscards),
        "in_octets": (current.ifInOctets, previous.ifInOctets),
        "out_octets": (current.ifOutOctets, previous.ifOutOctets),
    }
    deltas: dict[str, float | None] = {}
    for key, (cur, prev) in pairs.items():
        deltas[key], reset = counter_delta(cur, prev)
        resets.append(reset)
    h.counter_reset = any(resets)
    h.in_errors_delta, h.out_errors_delta = deltas["in_errors"], deltas["out_errors"]
    h.in_discards_delta = deltas["in_discards"]
    h.in_error_rate = _per_second(h.in_errors_delta, age_s)
    h.out_error_rate = _per_second(h.out_errors_delta, age_s)
    h.discard_rate = _per_second(h.in_discards_delta, age_s)
    h.in_util_pct = _util(deltas["in_octets"], age_s, current.ifSpeed)
    h.out_util_pct = _util(deltas["out_octets"], age_s, current.ifSpeed)
    for problem, rate in (("input_errors", h.in_error_rate), ("output_errors", h.out_error_rate)):
        if rate is not None and rate >= ERROR_RATE_WARN:
            h.problems.append(problem)
            h.severity = _worst(
                h.severity, Severity.CRITICAL if rate >= ERROR_RATE_CRIT else Severity.WARNING
            )
    if h.discard_rate is not None and h.discard_rate >= DISCARD_RATE_WARN:
        h.problems.append("discards")
        h.severity = _worst(h.severity, Severity.WARNING)
    for problem, pct in (("saturated_in", h.in_util_pct), ("saturated_out", h.out_util_pct)):
        if pct is not None and pct >= SATURATED_PCT:
            h.problems.append(problem)
            h.severity = _worst(h.severity, Severity.WARNING)
    return h


def assess_device(poll: DevicePoll) -> DeviceHealth:
    """Every interface of a device, matched to the previous poll by ifIndex, plus reboot detection:
    sysUpTime (hundredths of a second) under an hour, or lower than in the previous poll."""
    cur = poll.current
    uptime = None if cur.sysUpTime is None else cur.sysUpTime / 100
    health = DeviceHealth(
        device=poll.device, address=cur.address, sys_name=cur.sysName, uptime_s=uptime, age_s=poll.age_s
    )
    prev_uptime = poll.previous.sysUpTime if poll.previous else None
    if cur.sysUpTime is not None and prev_uptime is not None and cur.sysUpTime < prev_uptime:
        health.rebooted, health.reboot_reason = True, "sysUpTime went backwards since the previous poll"
    elif uptime is not None and uptime < RECENT_REBOOT_S:
        health.rebooted, health.reboot_reason = True, f"up for only {uptime / 60:.0f} minutes"
    before = {i.ifIndex: i for i in poll.previous.interfaces} if poll.previous else {}
    for iface in sorted(cur.interfaces, key=lambda i: i.ifIndex):
        health.interfaces.append(assess_interface(iface, before.get(iface.ifIndex), poll.age_s))
    return health
