"""The network specialist's view tools: poll a device over SNMP, keep it as evidence, judge its interfaces."""

from __future__ import annotations

import logging

from tools.base import Severity, ToolResult, ViewTool, view_tool
from tools.common import configured, finding_on, keep_rows, read_evidence
from tools.network import analysis as an
from tools.sources import DevicePoll, SnmpSource, SourceError, ToolContext

log = logging.getLogger(__name__)

MAX_ROWS = 50
_KIND = {
    "link_down": "interface_down",
    "input_errors": "interface_errors",
    "output_errors": "interface_errors",
    "discards": "interface_discards",
    "saturated_in": "interface_saturated",
    "saturated_out": "interface_saturated",
}


def _speed(bps: float | None) -> str:
    if not bps:
        return "unknown speed"
    return f"{bps / 1e9:g} Gbit/s" if bps >= 1e9 else f"{bps / 1e6:g} Mbit/s"


def _uptime(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    return f"{seconds / 3600:.1f} hours" if seconds >= 3600 else f"{seconds / 60:.0f} minutes"


def _rate(rate: float) -> str:
    return f"{rate:.1f}/s" if rate >= 0.1 else f"{rate:.3f}/s"


def _poll(src: SnmpSource, entity: str) -> DevicePoll:
    """Poll the device named `entity`, also accepted by address or in another letter case."""
    devices = src.devices()
    name = next(
        (n for n, addr in devices.items() if entity in (n, addr) or n.lower() == entity.lower()), None
    )
    if name is None:
        known = ", ".join(sorted(devices)) or "none"
        raise SourceError(f"no SNMP device named {entity!r}; known devices: {known}")
    return src.poll(name)


def _problem_title(h: an.InterfaceHealth, device: str, age_s: float | None) -> str:
    head = f"{h.name} (ifIndex {h.if_index}) on {device}"
    age = f"{age_s:.0f} s" if age_s else "the poll interval"
    if "link_down" in h.problems:
        return f"{head} is down while admin up (oper {h.oper}) — link fault: cable, optic or far-end port"
    discards = f", discards {h.in_discards_delta:,.0f}" if h.in_discards_delta else ""
    if "input_errors" in h.problems and h.in_error_rate is not None:
        return (
            f"{head}: input errors rising {h.in_errors_delta:,.0f} in {age} ({_rate(h.in_error_rate)})"
            f"{discards} — likely CRC / physical layer (cable, optic, duplex)"
        )
    if "output_errors" in h.problems and h.out_error_rate is not None:
        return (
            f"{head}: output errors rising {h.out_errors_delta:,.0f} in {age} ({_rate(h.out_error_rate)})"
            f"{discards} — likely duplex mismatch or a failing transmitter"
        )
    if "discards" in h.problems and h.discard_rate is not None:
        return (
            f"{head}: input discards rising {h.in_discards_delta:,.0f} in {age} ({_rate(h.discard_rate)})"
            " — likely congestion or buffer exhaustion"
        )
    if "saturated_in" in h.problems or "saturated_out" in h.problems:
        pct = max(h.in_util_pct or 0.0, h.out_util_pct or 0.0)
        return f"{head}: link saturated at {pct:.0f}% of {_speed(h.speed_bps)}"
    return f"{head}: oper status {h.oper} while admin up"


def _traffic(h: an.InterfaceHealth) -> str:
    parts = [f"Speed {_speed(h.speed_bps)}"]
    if h.in_util_pct is not None and h.out_util_pct is not None:
        parts.append(f"utilisation in {h.in_util_pct:.1f}% / out {h.out_util_pct:.1f}%")
    if h.in_errors is not None:
        parts.append(f"input errors {h.in_errors:,.0f} since boot")
    if h.counter_reset:
        parts.append("a counter went backwards (wrap or reset), that delta was ignored")
    return "; ".join(parts)


def _others(health: an.DeviceHealth) -> str:
    clean = [h.name for h in health.interfaces if h.state == "up" and not h.problems]
    shut = [h.name for h in health.interfaces if h.state == "admin_down"]
    parts = []
    if clean:
        parts.append(f"{len(clean)} clean ({', '.join(clean[:8])}{'…' if len(clean) > 8 else ''})")
    if shut:
        parts.append(f"{len(shut)} administratively down, not a fault ({', '.join(shut[:8])})")
    return f" Other interfaces: {'; '.join(parts)}." if parts else ""


@view_tool("network", detects=("interfaces", "device_health"))
def interface_health(ctx: ToolContext, entity: str) -> ToolResult:
    """Poll one SNMP device (switch, router, firewall) and judge every interface against the
    previous poll: admin up + oper down is a link fault (critical); admin down is shut on purpose
    (never a fault); input/output error and discard rates (counter delta / poll interval, counter
    wraps ignored) and in/out utilisation (octets x 8 / interval / ifSpeed); a recent reboot
    (sysUpTime under an hour or lower than before).

    Findings: `interface_down`, `interface_errors` (>= 1/s warning, >= 10/s critical),
    `interface_discards`, `interface_saturated` (>= 90%), `interface_state`, `device_rebooted`,
    or one `interfaces_healthy` info finding.
    """
    ev, poll = read_evidence(
        "network",
        "interface_health",
        entity,
        lambda: _poll(configured(ctx.sources.snmp, "SNMP"), entity),
        log=log,
        doing=f"polling {entity}",
        failed=f"Could not poll {entity} over SNMP",
    )
    if poll is None:
        return ToolResult(evidence=[ev])
    health = an.assess_device(poll)
    keep_rows(ev, [h.model_dump(mode="json") for h in health.interfaces], MAX_ROWS)
    bad = [h for h in health.interfaces if h.problems]
    uptime = f", up {_uptime(health.uptime_s)}" if health.uptime_s is not None else ""
    ev.summary = (
        f"{poll.device} ({health.address}{uptime}): "
        f"{len(health.interfaces)} interfaces, {len(bad)} with problems"
        + (f", polled {health.age_s:.0f} s apart" if health.age_s else ", no previous poll")
    )
    findings = []
    if health.rebooted:
        title = f"{poll.device} rebooted recently: {health.reboot_reason}"
        findings.append(
            finding_on(ev, "device_rebooted", Severity.WARNING, title, "Counters restarted with it.")
        )
    others = _others(health)
    for h in sorted(bad, key=lambda x: -x.severity.rank):
        title = _problem_title(h, poll.device, health.age_s)
        kind = _KIND.get(h.problems[0], "interface_state")
        findings.append(
            finding_on(ev, kind, h.severity, title, _traffic(h) + "." + others, **h.model_dump(mode="json"))
        )
    if not bad:
        up = [h for h in health.interfaces if h.state == "up"]
        shut = [h.name for h in health.interfaces if h.state == "admin_down"]
        noun = "enabled interface" if shut else "interface"
        on = poll.device
        which = f"The only {noun} on {on} is" if len(up) == 1 else f"All {len(up)} {noun}s on {on}"
        state = "up with no errors" if health.age_s else "up (no previous poll, so error rates are unknown)"
        title = f"{which} {state}" + (f" ({len(shut)} administratively down)" if shut else "")
        detail = ""
        if shut:
            detail = f"Administratively down on purpose, not a fault: {', '.join(shut)}. {detail}".strip()
        findings.append(
            finding_on(ev, "interfaces_healthy", Severity.INFO, title, detail, interfaces=len(up))
        )
    return ToolResult(evidence=[ev], findings=findings)


NETWORK_TOOLS: list[ViewTool] = [interface_health]
