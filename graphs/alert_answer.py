"""An alert answered as an alert: its name, start and age, what its annotations say, and whether what
was found explains it. Heartbeat alerts (Watchdog, DeadMansSwitch) fire by design: a healthy signal."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from graphs.correlate import Correlation, key
from tools.base import Finding, Severity
from tools.world import parse_ts

_HEARTBEAT_NAME = re.compile(
    r"watchdog|heart ?beat|dead ?man'?s ?switch|deadmansswitch|always[-_ ]?firing", re.I
)
_HEARTBEAT_TEXT = re.compile(
    r"always (?:be )?fir(?:ing|es)|meant to ensure that the entire alerting pipeline|"
    r"pipeline is (?:functional|alive)|"
    r"heart ?beat|dead ?man'?s ?switch",
    re.IGNORECASE,
)
_NOTES = (("summary", "Summary"), ("description", "Description"), ("message", "Message"))
_RUNBOOK = ("runbook_url", "runbook", "runbookURL", "playbook", "runbook_link")


def is_heartbeat(alert: dict[str, Any]) -> bool:
    """A Watchdog / heartbeat / dead man's switch alert: it always fires so that its absence is noticed."""
    notes = " ".join(str(v) for v in (alert.get("annotations") or {}).values())
    return bool(_HEARTBEAT_NAME.search(str(alert.get("name", "")))) or bool(
        _HEARTBEAT_TEXT.search(f"{notes} {alert.get('summary', '')}")
    )


def _age(started: datetime, now: datetime) -> str:
    minutes = (now - started).total_seconds() / 60
    if minutes < 0:
        return "in the future (clock skew?)"
    if minutes < 120:
        return f"{minutes:.0f} min ago"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h ago"
    return f"{minutes / 1440:.1f} days ago"


def _explains(
    alert: dict[str, Any], findings: list[Finding], corr: Correlation, number: dict[str, int]
) -> str:
    problems = [f for f in findings if f.severity is not Severity.INFO and f.kind != "similar_incident"]
    if not problems:
        return (
            "Not explained: nothing examined explains this alert — every source consulted looks normal "
            "in the window. The alert may rest on data the copilot does not read, or its threshold may "
            "not match what the sources measure; check the alert rule and its query."
        )
    entity = str(alert.get("entity") or "").lower()
    root = corr.root
    on_entity = [f for f in problems if entity and (f.entity.lower() == entity or entity in f.text.lower())]
    if root is not None:
        words = f"the root cause above (finding {number.get(root, '?')})"
        return f"Explained by what was found: {words}" + (
            f", which reaches {alert.get('entity')}." if on_entity and key(on_entity[0]) != root else "."
        )
    lead = on_entity[0] if on_entity else problems[0]
    where = "on the alert's entity" if on_entity else "elsewhere (not on the alert's entity)"
    return f"Explained by finding {number.get(key(lead), '?')} {where}: {lead.title}."


def alert_lines(
    alert: dict[str, Any] | None,
    now: datetime,
    findings: list[Finding],
    corr: Correlation,
    number: dict[str, int],
) -> list[str]:
    """The lines that answer an alert as an alert (empty for a question)."""
    if not alert:
        return []
    name = alert.get("name") or "alert"
    entity = f" on {alert['entity']}" if alert.get("entity") else ""
    sev = alert.get("severity") or "warning"
    lines = []
    try:
        started = parse_ts(alert["starts_at"]) if alert.get("starts_at") else None
    except ValueError:
        started = None
    since = f", started {started:%Y-%m-%d %H:%M} UTC ({_age(started, now)})" if started else ""
    lines.append(f"Alert {name} ({sev}, {alert.get('status', 'firing')}){entity}{since}.")
    notes = alert.get("annotations") or {}
    for field, label in _NOTES:
        if notes.get(field):
            lines.append(f"  {label}: {notes[field]}")
    if not any(notes.get(f) for f, _ in _NOTES) and alert.get("summary"):
        lines.append(f"  Summary: {alert['summary']}")
    runbook = next((notes[k] for k in _RUNBOOK if notes.get(k)), None)
    if runbook:
        lines.append(f"  Runbook: {runbook}")
    if is_heartbeat(alert):
        lines.append(
            f"  {name} is a heartbeat alert: it is always firing by design, so that the alerting pipeline "
            "can be seen to work. It firing is a healthy signal (its absence would be the problem); "
            "nothing to fix."
        )
        return lines
    lines.append("  " + _explains(alert, findings, corr, number))
    return lines


__all__ = ["alert_lines", "is_heartbeat"]
