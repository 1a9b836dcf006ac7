"""Deadlock reports the engines record themselves, parsed into DeadlockRow fields: SQL Server's
xml_deadlock_report events (system_health ring buffer) and InnoDB's LATEST DETECTED DEADLOCK section."""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeXml
from defusedxml.common import DefusedXmlException

MAX_STATEMENT = 2000
MAX_REPORTS = 3


# --- SQL Server: system_health's ring buffer -------------------------------------------------------


def mssql_deadlocks(target_data: str | None, limit: int = MAX_REPORTS) -> list[dict[str, Any]]:
    """The latest `limit` xml_deadlock_report events of a ring_buffer target's XML, newest first."""
    if not target_data:
        return []
    try:
        root = SafeXml.fromstring(target_data)
    except (SafeXml.ParseError, DefusedXmlException):
        return []
    events = [e for e in root.iter("event") if e.get("name") == "xml_deadlock_report"]
    events.sort(key=lambda e: e.get("timestamp") or "", reverse=True)
    return [_mssql_report(e) for e in events[:limit]]


def _mssql_report(event: Element) -> dict[str, Any]:
    graph = event.find(".//deadlock")
    parties: dict[str, dict[str, Any]] = {}
    if graph is not None:
        victims = {v.get("id") for v in graph.iter("victimProcess")}
        for p in graph.iter("process"):
            pid = p.get("id") or ""
            text = " ".join((p.findtext("inputbuf") or "").split())[:MAX_STATEMENT]
            spid = p.get("spid")
            parties[pid] = {
                "session_id": int(spid) if spid and spid.lstrip("-").isdigit() else None,
                "victim": pid in victims,
                "login_name": p.get("loginname"),
                "host_name": p.get("hostname"),
                "database_name": p.get("currentdbname"),
                "sql_text": text or None,
                "waits_for": _lock_words(p.get("lockMode"), p.get("waitresource")),
                "holds": None,
            }
        for res in graph.iter():
            if (
                res.tag in ("resource-list", "deadlock", "process-list", "victim-list")
                or res.find("owner-list") is None
            ):
                continue
            obj = res.get("objectname") or res.get("dbid") or res.tag
            what = f"{res.tag} on {obj}" + (f" index {res.get('indexname')}" if res.get("indexname") else "")
            for owner in res.iter("owner"):
                party = parties.get(owner.get("id") or "")
                if party is not None and party["holds"] is None:
                    party["holds"] = f"{owner.get('mode')} {what}"
            for waiter in res.iter("waiter"):
                party = parties.get(waiter.get("id") or "")
                if party is not None:
                    party["waits_for"] = f"{waiter.get('mode')} {what}"
    return {
        "occurred_at": event.get("timestamp"),
        "parties": list(parties.values()),
        "source": "system_health xml_deadlock_report",
    }


def _lock_words(mode: str | None, resource: str | None) -> str | None:
    if not mode and not resource:
        return None
    return " ".join(p for p in (mode, resource) if p)


# --- InnoDB: SHOW ENGINE INNODB STATUS ----------------------------------------------------------------

_SECTION = re.compile(r"LATEST DETECTED DEADLOCK\s*\n-+\n(.*?)(?:\n-{4,}\n[A-Z][A-Z /]+\n-{4,}|\Z)", re.S)
_WHEN = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)", re.M)
_TRX = re.compile(r"^\*\*\* \((\d+)\) TRANSACTION:\s*$", re.M)
_THREAD = re.compile(r"(?:MySQL|MariaDB) thread id (\d+), OS thread handle \S+, query id \d+\s*(\S*)\s*(\S*)")
_LOCK = re.compile(
    r"(RECORD|TABLE) LOCKS? .*?(?:index (\S+) of )?table (`[^`]+`\.`[^`]+`).*?"
    r"(lock[_ ]mode \S+(?: locks \S+(?: but not gap| gap before rec)?)?)"
)
_TRX_ID = re.compile(r"^TRANSACTION (\d+),", re.M)
_HOLDER_TRX = re.compile(r"\btrx id (\d+)\b")
_VICTIM = re.compile(r"\*\*\* WE ROLL BACK TRANSACTION \((\d+)\)")


def innodb_deadlock(status: str | None) -> list[dict[str, Any]]:
    """The LATEST DETECTED DEADLOCK of an InnoDB status text as one DeadlockRow dict (none if absent)."""
    m = _SECTION.search(status or "")
    if m is None:
        return []
    body = m.group(1)
    when = _WHEN.search(body)
    victim = _VICTIM.search(body)
    starts = list(_TRX.finditer(body))
    parties = []
    conflicts: list[tuple[str, str]] = []  # MariaDB: (trx id holding, lock) from "CONFLICTING WITH"
    trx_of: dict[str, dict[str, Any]] = {}
    for i, start in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else (victim.start() if victim else len(body))
        text = body[start.end() : end]
        party = _innodb_party(start.group(1), text, victim.group(1) if victim else None)
        parties.append(party)
        if (trx := _TRX_ID.search(text)) is not None:
            trx_of[trx.group(1)] = party
        conflicts += _conflicting(text)
    for holder_trx, lock in conflicts:
        holder = trx_of.get(holder_trx)
        if holder is not None and holder["holds"] is None:
            holder["holds"] = lock
    return [
        {
            "occurred_at": when.group(1).replace(" ", "T") if when else None,
            "parties": parties,
            "source": "InnoDB LATEST DETECTED DEADLOCK (server local time)",
        }
    ]


def _innodb_party(number: str, text: str, victim: str | None) -> dict[str, Any]:
    thread = _THREAD.search(text)
    lines = text.splitlines()
    statement = ""
    if thread is not None:
        at = next((i for i, line in enumerate(lines) if thread.group(0) in line), None)
        if at is not None:
            rest = []
            for line in lines[at + 1 :]:
                if line.startswith("***"):
                    break
                rest.append(line)
            statement = " ".join(" ".join(rest).split())[:MAX_STATEMENT]
    holds = waits = None
    section = ""
    for line in lines:
        if line.startswith("***"):
            # MySQL: "(n) HOLDS THE LOCK(S)"; MariaDB's "CONFLICTING WITH" is the other party's lock
            section = "holds" if "HOLDS" in line else "waits" if "WAITING" in line else ""
            continue
        lock = _LOCK.search(line)
        if lock and section == "holds" and holds is None:
            holds = _innodb_lock(lock)
        elif lock and section == "waits" and waits is None:
            waits = _innodb_lock(lock)
    return {
        "session_id": int(thread.group(1)) if thread else None,
        "victim": victim == number,
        "host_name": (thread.group(2) or None) if thread else None,
        "login_name": (thread.group(3) or None) if thread else None,
        "sql_text": statement or None,
        "holds": holds,
        "waits_for": waits,
    }


def _conflicting(text: str) -> list[tuple[str, str]]:
    """MariaDB's '*** CONFLICTING WITH:' locks: (the holder's trx id, the lock in words)."""
    found, inside = [], False
    for line in text.splitlines():
        if line.startswith("***"):
            inside = "CONFLICTING" in line
            continue
        lock = _LOCK.search(line) if inside else None
        holder = _HOLDER_TRX.search(line) if lock else None
        if lock and holder:
            found.append((holder.group(1), _innodb_lock(lock)))
    return found


def _innodb_lock(m: re.Match[str]) -> str:
    kind, index, table, mode = m.groups()
    where = f"{table}" + (f" index {index}" if index else "")
    return f"{mode.replace('lock_mode ', '').replace('lock mode ', '')} {kind.lower()} lock on {where}"
