"""Private PostgreSQL 15 and MariaDB 10.11 instances for tests that need a server configuration the shared
ones must not get (low max_connections, prepared transactions, replication slots holding WAL): each is
started from a temporary directory on a free loopback port and removed afterwards. The shared servers
on 5432 / 3306 are never touched.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RO_USER, RO_PASSWORD = "opscopilot_ro", "opscopilot-ro-private"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _as(user: str, argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run as `user` when we are root (initdb and postgres refuse root), else as ourselves."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]


def _owned_dir(prefix: str, owner: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _client(argv: list[str]) -> str:
    """A database client's output (its statement failing raises CalledProcessError)."""
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout.strip()


class Unavailable(RuntimeError):
    """The server binaries are not installed here."""


@dataclass
class PrivatePostgres:
    port: int
    root: Path

    def psql(self, sql: str, db: str = "postgres") -> str:
        flags = ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
        return _client(
            ["psql", *flags, "-h", HOST, "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql]
        )


@contextlib.contextmanager
def private_postgres(**settings: object) -> Iterator[PrivatePostgres]:
    """initdb + postgres on a free port with `settings` (-c key=value), a read-only login with pg_monitor."""
    if not (PG_BIN / "initdb").exists():
        raise Unavailable(f"{PG_BIN}/initdb not found")
    root = _owned_dir("dbdiag-pg-", "postgres")
    port = free_port()
    data = root / "data"
    args = [
        f"-c listen_addresses={HOST}",
        f"-c port={port}",
        f"-c unix_socket_directories={root}",
        "-c fsync=off",
        "-c shared_buffers=32MB",
    ] + [f"-c {k}={v}" for k, v in settings.items()]
    try:
        _as(
            "postgres",
            [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        )
        _as(
            "postgres",
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                " ".join(args),
                "-l",
                str(root / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        server = PrivatePostgres(port, root)
        server.psql(
            f"CREATE ROLE {RO_USER} LOGIN PASSWORD '{RO_PASSWORD}'; GRANT pg_monitor TO {RO_USER};"
            f" ALTER ROLE {RO_USER} SET default_transaction_read_only = on"
        )
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _as("postgres", [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class PrivateMariaDB:
    port: int
    root: Path

    def sql(self, statement: str) -> str:
        return _client(
            ["mariadb", f"--socket={self.root / 'mysqld.sock'}", "-u", "root", "-N", "-B", "-e", statement]
        )


@contextlib.contextmanager
def private_mariadb(**settings: object) -> Iterator[PrivateMariaDB]:
    """mariadb-install-db + mariadbd on a free port with `settings` (--key=value), performance_schema on
    with the metadata-lock instrument, binary logging on, and the read-only login of
    docs/readonly-logins.md (PROCESS, SELECT on performance_schema, BINLOG MONITOR, SLAVE MONITOR)."""
    daemon = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    if not Path(daemon).exists() or not shutil.which("mariadb-install-db"):
        raise Unavailable("mariadbd / mariadb-install-db not found")
    root = _owned_dir("dbdiag-maria-", "mysql")
    port = free_port()
    data = root / "data"
    options = [
        f"--datadir={data}",
        f"--port={port}",
        f"--socket={root / 'mysqld.sock'}",
        f"--bind-address={HOST}",
        f"--pid-file={root / 'mysqld.pid'}",
        f"--log-error={root / 'error.log'}",
        "--performance_schema=ON",
        "--performance-schema-instrument=wait/lock/metadata/sql/mdl=ON",
        f"--log-bin={root / 'binlog'}",
        "--innodb_buffer_pool_size=64M",
        "--innodb_log_file_size=48M",
        "--skip-name-resolve",
    ]
    options += [f"--{k}={v}" for k, v in settings.items()]
    process: subprocess.Popen[bytes] | None = None
    try:
        user = ["--user=mysql"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={data}",
                *user,
                "--skip-test-db",
                "--auth-root-authentication-method=normal",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        process = subprocess.Popen(
            [daemon, "--no-defaults", *user, *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        server = PrivateMariaDB(port, root)
        deadline = time.monotonic() + 60
        while True:
            try:
                server.sql("SELECT 1")
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((root / "error.log").read_text(errors="replace")[-2000:]) from None
                time.sleep(0.3)
        server.sql(
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';"
            " GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
            f" CREATE USER '{RO_USER}'@'127.0.0.1' IDENTIFIED BY '{RO_PASSWORD}';"
            f" GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO '{RO_USER}'@'127.0.0.1';"
            f" GRANT SELECT ON performance_schema.* TO '{RO_USER}'@'127.0.0.1'; CREATE DATABASE dbdiag;"
        )
        yield server
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
