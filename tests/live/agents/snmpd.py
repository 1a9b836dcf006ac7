"""Net-SNMP's snmpd on a free loopback UDP port with a throw-away config: a v2c community and two
v3 users (SHA/AES-128 and SHA-256/AES-256, authPriv). It serves this machine's real interfaces.

scripts/services stops every system snmpd by name (`pkill -x snmpd`), which also ends this one
when another session runs it meanwhile; `ensure_running()` brings it back on the same port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SNMPD = "/usr/sbin/snmpd"
USERS = {
    "opsv3": ("SHA", "opsAuthKey-1", "AES", "opsPrivKey-1"),
    "opsv3strong": ("SHA-256", "opsAuthKey-256", "AES-256", "opsPrivKey-256"),
}
COMMUNITY = "opsro-live"


@dataclass
class Snmpd:
    workdir: Path
    port: int = 0
    community: str = COMMUNITY
    users: dict[str, tuple[str, str, str, str]] = field(default_factory=lambda: dict(USERS))
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "snmpd.log"

    def _launch(self) -> bool:
        """Start snmpd in the foreground (-f), logging to stdout (-Lo) into the log file, ignoring
        the system config (-C). True once it reports its version (its endpoint is open)."""
        persist = self.workdir / "persist"
        persist.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "snmpd.conf"
        lines = [f"agentAddress udp:127.0.0.1:{self.port}", f"rocommunity {self.community} 127.0.0.1"]
        for user, (ap, ak, pp, pk) in self.users.items():
            lines += [f"createUser {user} {ap} {ak} {pp} {pk}", f"rouser {user} priv"]
        conf.write_text("\n".join(lines) + "\n")
        env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(persist)}
        start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [SNMPD, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(self.workdir / "snmpd.pid")],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process.poll() is None:
            if "NET-SNMP version" in self.log.read_bytes()[start:].decode(errors="replace"):
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def ensure_running(self) -> None:
        dead = self.process is None or self.process.poll() is not None
        if dead and not self._launch():
            raise RuntimeError(f"snmpd did not restart on port {self.port}: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-500:] if self.log.exists() else "no log"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
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
    """A running snmpd, or why it could not start."""
    if not Path(SNMPD).exists():
        return f"{SNMPD} is not installed (scripts/services installs Debian's snmpd)"
    agent = Snmpd(workdir)
    for _attempt in range(3):  # a free port can be taken between the probe and snmpd's bind
        agent.port = _free_udp_port()
        if agent._launch():
            return agent
    return f"snmpd did not start: {agent.tail()}"
