"""Who holds a piece of work: `host:pid` of a process, and whether that process still runs."""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def owner_id() -> str:
    """This process, as `host:pid`."""
    return f"{HOST}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(owner: str | None) -> bool | None:
    """True/False for an owner on this host; None when it runs elsewhere (judge it by a heartbeat)."""
    if not owner or ":" not in owner:
        return None
    host, _, pid = owner.rpartition(":")
    if host != HOST or not pid.isdigit():
        return None
    return pid_alive(int(pid))
