"""Net-SNMP's snmpd on a free loopback UDP port with a throw-away config: a v2c community and two
v3 users (SHA/AES-128 and SHA-256/AES-256, authPriv). It serves this machine's real interfaces."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SNMPD = "/usr/sbin/snmpd"


@dataclass
class Snmpd:
    port: int
    community: str
    users: dict[str, tuple[str, str, str, str]]  # user -> (auth protocol, auth key, priv protocol, priv key)
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_snmpd(workdir: Path) -> Snmpd | str:
    """Start snmpd in the foreground (-f), logging to a file, ignoring the system config (-C).
    Returns the running agent, or why it could not start."""
    if not Path(SNMPD).exists():
        return f"{SNMPD} is not installed (scripts/services installs Debian's snmpd)"
    persist = workdir / "persist"
    persist.mkdir(parents=True, exist_ok=True)
    users = {
        "opsv3": ("SHA", "opsAuthKey-1", "AES", "opsPrivKey-1"),
        "opsv3strong": ("SHA-256", "opsAuthKey-256", "AES-256", "opsPrivKey-256"),
    }
    community = "opsro-live"
    log = workdir / "snmpd.log"
    for _attempt in range(3):
        port = _free_udp_port()
        conf = workdir / "snmpd.conf"
        lines = [f"agentAddress udp:127.0.0.1:{port}", f"rocommunity {community} 127.0.0.1"]
        for user, (ap, ak, pp, pk) in users.items():
            lines += [f"createUser {user} {ap} {ak} {pp} {pk}", f"rouser {user} priv"]
        conf.write_text("\n".join(lines) + "\n")
        env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(persist)}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [SNMPD, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(workdir / "snmpd.pid")],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            if proc.poll() is not None:
                break
            if "NET-SNMP version" in text:
                return Snmpd(port=port, community=community, users=users, process=proc, log=log)
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    return f"snmpd did not start: {log.read_text(errors='replace')[-500:] if log.exists() else 'no log'}"
