"""The managed model child: started on first use, health-checked, shared, restarted once, stopped with us.

One child per (model file, settings) serves every investigation of this process and of any other
process on the machine that uses the same state directory: a state file under a file lock names
the running child's pid and port, and a second process adopts it instead of loading the model
again. The process that started the child owns it and stops it when it exits (the child also
exits by itself when its owner dies: see agents/llm/worker.py).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx

from tools.owners import pid_alive

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
LLAMA_ENGINE = "agents.llm.llamacpp:make_engine"
HEALTH_EVERY_S = 2.0
HEALTH_TIMEOUT_S = 3.0  # generous: a loaded 2-core machine answers slowly, a stopped child never
HUNG_AFTER_MISSES = 2
RETRY_BROKEN_AFTER_S = 300.0  # a child that could not start is tried again after this long


class ChildUnavailable(RuntimeError):
    """The model child cannot serve (failed to start, failed its smoke test, or died twice)."""


@dataclass(frozen=True)
class ChildSpec:
    """How to start the child; equal specs share one child."""

    model_path: str
    n_ctx: int = 4096
    threads: int | None = None
    extra_buffers: bool = False
    engine: str = LLAMA_ENGINE
    state_dir: Path = Path("var/models")
    startup_timeout_s: float = 60.0

    def key(self) -> str:
        ident = {k: str(v) for k, v in asdict(self).items() if k not in ("state_dir", "startup_timeout_s")}
        ident["model_path"] = str(Path(self.model_path).resolve())
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def describe_exit(returncode: int) -> str:
    """'killed by SIGSEGV' or 'exited with code 3'."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


@dataclass
class _Running:
    pid: int
    port: int
    proc: subprocess.Popen[bytes] | None  # None when adopted from another process
    started: float = field(default_factory=time.monotonic)
    misses: int = 0
    checked: float = 0.0


class ModelChild:
    """Owns or adopts the child for one ChildSpec. Thread-safe; shared through ``shared_child``."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self._lock = threading.RLock()
        self._running: _Running | None = None
        self._restarts_left = 1
        self._broken: str | None = None
        self._broken_at = 0.0
        self._death: str | None = None
        self.starts = 0
        self.info: dict[str, Any] = {}

    # --- paths ---------------------------------------------------------------------------
    @property
    def _base(self) -> Path:
        return Path(self.spec.state_dir).expanduser() / f"local-child-{self.spec.key()}"

    @property
    def log_path(self) -> Path:
        return Path(self.spec.state_dir).expanduser() / "local-child.log"

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        path = self._base.with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # --- public --------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        running = self._running
        return running.pid if running else None

    @property
    def url(self) -> str | None:
        running = self._running
        return f"http://127.0.0.1:{running.port}" if running else None

    @property
    def broken(self) -> str | None:
        return self._broken

    def ensure(self) -> str:
        """The base URL of a healthy child, starting, adopting or restarting one if needed."""
        with self._lock:
            if self._broken and time.monotonic() - self._broken_at < RETRY_BROKEN_AFTER_S:
                raise ChildUnavailable(self._broken)
            if self._broken:  # long ago: a long-running service tries once more
                self._broken, self._restarts_left = None, 1
            running = self._running
            if running is not None:
                reason = self._exit_reason(running)
                if reason is None:
                    return f"http://127.0.0.1:{running.port}"
                self._lost(reason)
            if self._death is not None:  # a child of ours died: one restart per failure streak
                if self._restarts_left <= 0:
                    self._give_up(f"model child {self._death} and its restart failed too")
                self._restarts_left -= 1
                log.warning("model child %s; restarting it", self._death)
            with self._file_lock():
                running = self._adopt() or self._start()
            self._running = running
            self._death = None
            return f"http://127.0.0.1:{running.port}"

    def check(self) -> str | None:
        """None while the child is alive and answers its health check; otherwise what is wrong.
        Cheap enough to call every half second (the health request is throttled)."""
        running = self._running
        if running is None:
            return self._death
        reason = self._exit_reason(running)
        if reason is not None:
            return reason
        now = time.monotonic()
        if now - running.checked < HEALTH_EVERY_S:
            return None
        running.checked = now
        if self._healthy(running.port):
            running.misses = 0
            return None
        running.misses += 1
        if running.misses >= HUNG_AFTER_MISSES:
            return f"stopped answering its health check (pid {running.pid}, hung)"
        return None

    def failed(self, reason: str) -> None:
        """A call found the child dead or hung: kill what is left; the next ``ensure`` restarts it."""
        with self._lock:
            running = self._running
            if running is None:
                return
            self._kill(running)
            self._lost(reason)

    def succeeded(self) -> None:
        """A call was served: the failure streak ends (a later death may be restarted again)."""
        self._restarts_left = 1

    def stop(self) -> None:
        """Stop the child if this process started it (adopted children belong to their owner)."""
        with self._lock:
            running, self._running = self._running, None
            if running is None or running.proc is None:
                return
            with contextlib.suppress(OSError):
                running.proc.stdin.close()  # type: ignore[union-attr]
            running.proc.terminate()
            try:
                running.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                running.proc.kill()
                running.proc.wait(timeout=5)
            self._clear_state(running.pid)

    # --- internals -----------------------------------------------------------------------
    def _give_up(self, reason: str) -> NoReturn:
        self._broken, self._broken_at = reason, time.monotonic()
        raise ChildUnavailable(reason)

    def _lost(self, reason: str) -> None:
        running, self._running = self._running, None
        self._death = reason
        if running is not None:
            self._clear_state(running.pid)

    def _exit_reason(self, running: _Running) -> str | None:
        if running.proc is not None:
            rc = running.proc.poll()
            return None if rc is None else f"{describe_exit(rc)} (pid {running.pid})"
        return None if pid_alive(running.pid) else f"exited (pid {running.pid}, started by another process)"

    def _kill(self, running: _Running) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(running.pid, signal.SIGKILL)
        if running.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                running.proc.wait(timeout=5)

    def _healthy(self, port: int, timeout: float = HEALTH_TIMEOUT_S) -> bool:
        try:
            resp = httpx.get(f"http://127.0.0.1:{port}/health", timeout=timeout)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    def _state_path(self) -> Path:
        return self._base.with_suffix(".json")

    def _clear_state(self, pid: int) -> None:
        path = self._state_path()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == pid:
                path.unlink()

    def _adopt(self) -> _Running | None:
        try:
            state = json.loads(self._state_path().read_text())
        except (OSError, ValueError):
            return None
        pid, port = state.get("pid"), state.get("port")
        if state.get("key") != self.spec.key() or not isinstance(pid, int) or not isinstance(port, int):
            return None
        if state.get("owner") == os.getpid() or not pid_alive(pid) or not self._healthy(port):
            return None
        self.info = state
        log.info("using the model child pid %d on port %d (started by pid %s)", pid, port, state.get("owner"))
        return _Running(pid=pid, port=port, proc=None)

    def _command(self) -> list[str]:
        spec = self.spec
        cmd = [
            sys.executable,
            "-m",
            "agents.llm.worker",
            "--model",
            str(spec.model_path),
            "--n-ctx",
            str(spec.n_ctx),
            "--engine",
            spec.engine,
        ]
        if spec.threads:
            cmd += ["--threads", str(spec.threads)]
        if spec.extra_buffers:
            cmd.append("--extra-buffers")
        return cmd

    def _start(self) -> _Running:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        started = time.monotonic()
        with self.log_path.open("ab") as log_file:
            proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                cwd=str(ROOT),
                env=env,
                close_fds=True,
            )
        self.starts += 1
        _owned.add(self)
        try:
            ready = self._read_ready(proc)
        except ChildUnavailable as exc:
            self._give_up(str(exc))
        assert proc.stdout is not None
        proc.stdout.close()
        self.info = {**ready, "startup_s": round(time.monotonic() - started, 3)}
        state = {"pid": proc.pid, "port": ready["port"], "key": self.spec.key(), "owner": os.getpid()}
        tmp = self._state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps({**state, "model": self.spec.model_path}))
        tmp.replace(self._state_path())
        log.info(
            "model child pid %d ready on port %d in %.1fs",
            proc.pid,
            ready["port"],
            time.monotonic() - started,
        )
        return _Running(pid=proc.pid, port=int(ready["port"]), proc=proc)

    def _read_ready(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        """Wait for the child's one JSON line; a crash, a refusal or silence becomes ChildUnavailable."""
        assert proc.stdout is not None
        deadline = time.monotonic() + self.spec.startup_timeout_s
        fd = proc.stdout.fileno()
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.wait(timeout=5)
                raise ChildUnavailable(
                    f"model child did not get ready within {self.spec.startup_timeout_s:.0f}s "
                    f"(load and smoke generation; log: {self.log_path})"
                )
            readable, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not readable:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                rc = proc.wait(timeout=10)
                raise ChildUnavailable(
                    f"model child {describe_exit(rc)} while loading the model or running its "
                    f"one-token smoke generation (log: {self.log_path})"
                )
            buf += chunk
        try:
            ready = json.loads(buf.split(b"\n", 1)[0])
        except ValueError as exc:
            proc.kill()
            raise ChildUnavailable(f"model child printed {buf[:200]!r} instead of its ready line") from exc
        if not ready.get("ready"):
            proc.wait(timeout=10)
            stage = "smoke generation" if ready.get("stage") == "smoke" else "model load"
            raise ChildUnavailable(f"model child failed its {stage}: {ready.get('error')}")
        return dict(ready)


_registry_lock = threading.Lock()
_registry: dict[str, ModelChild] = {}
_owned: set[ModelChild] = set()


def shared_child(spec: ChildSpec) -> ModelChild:
    """The process-wide child for ``spec`` (created, not started: it starts on first use)."""
    with _registry_lock:
        child = _registry.get(spec.key())
        if child is None or child.spec != spec:
            child = _registry[spec.key()] = ModelChild(spec)
        return child


def forget_children() -> None:
    """Stop every child this process started and forget them all (tests use this between cases)."""
    with _registry_lock:
        children = list(_registry.values())
        _registry.clear()
    for child in children:
        child.stop()
        _owned.discard(child)


@atexit.register
def _stop_owned() -> None:
    for child in list(_owned):
        with contextlib.suppress(Exception):
            child.stop()
