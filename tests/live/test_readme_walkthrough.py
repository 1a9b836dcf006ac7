"""The README's remediation walkthrough, both variants (the CLI; HTTP with curl against `serve`), each
run as printed (bash, from a directory holding the project's .venv: the shared setup, the variant,
the clean-up) against a private PostgreSQL 15 started here from a temporary directory on a free port,
so the shared server's other sessions can neither be proposed nor touched."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.live import unavailable

pytestmark = [pytest.mark.live, pytest.mark.slow]  # three CLI runs that load the model stack: about a minute

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def block(name: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(
        rf"<!-- walkthrough:{name} -->\s*```bash\n(.*?)```\s*<!-- walkthrough:{name}-end -->", text, re.S
    )
    assert m, f"the README has no walkthrough:{name} block"
    return m.group(1)


def walkthrough(variant: str) -> str:
    return "\n".join(block(name) for name in ("setup", variant, "cleanup"))


def _as_postgres(argv: list[str]) -> None:
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def private_postgres() -> Iterator[int]:
    if not (PG_BIN / "initdb").exists():
        unavailable(f"{PG_BIN}/initdb is not installed")
    root = Path(tempfile.mkdtemp(prefix="actions-pg-"))
    root.chmod(0o777)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    data = root / "data"
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off"
    try:
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
        _as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
        )
        yield port
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("variant", ["cli", "http"])
def test_the_readme_walkthrough_runs_as_printed(variant: str, tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    script = tmp_path / "walkthrough.sh"
    script.write_text(walkthrough(variant))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        http_port = int(s.getsockname()[1])
    with private_postgres() as port:
        env = {
            "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "PGPORT": str(port),
            "DEMO_PORT": str(http_port),
            "HF_HUB_OFFLINE": "1",
        }
        proc = subprocess.run(
            ["bash", "-e", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^\s+1 \| PAID$", out, re.M), out  # the blocked checkout UPDATE went through
    assert "audit log var/demo/opscopilot.sqlite: OK," in out
    assert not (tmp_path / "var" / "demo").exists()  # it cleaned up
    if variant == "cli":
        head = re.search(r"kill_session pg-demo-01 session (\d+) \(login_name=actions_demo_app", out)
        assert head, out
        assert f"kill_session pg-demo-01 session {head.group(1)}: verified." in out, out
        assert "carol asked for this investigation" in proc.stderr and "may not approve it" in proc.stderr
        for kind in ("proposed", "pending", "decision_refused", "decision", "approved", "executing",
                     "executed", "verified"):  # fmt: skip
            assert f" {kind} " in out, kind
    else:
        assert "carol: 403" in out, out
        head = re.search(r"kill_session pg-demo-01 session (\d+): verified\.", out)
        assert head, out
        assert re.search(rf"^pg-demo-01 session {head.group(1)}\nverified\n.*was ended", out, re.M), out
