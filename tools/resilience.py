"""Resilience for live backends: a circuit breaker, a bounded connection pool, and a guarded call.

A live source must never hang or hammer a sick server. The breaker stops calling a server after
`failures` consecutive failures (timeouts, refused connections) and lets one trial call through after
`reset_s`; the pool caps how many connections one copilot holds to one server. Both are generic: the
ODBC backend pools pyodbc connections, an HTTP backend may use the breaker alone (`breaker.call`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, Literal, TypeVar

from tools.sources import BackendError

log = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C")
E = TypeVar("E", bound=BackendError)
CircuitState = Literal["closed", "open", "half-open"]


class CircuitOpen(RuntimeError):
    """The breaker refused the call without touching the server."""


class PoolTimeout(TimeoutError):
    """Every connection of the pool stayed busy for the whole acquire timeout."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class CircuitBreaker:
    """closed -> open after `failures` consecutive failures -> half-open after `reset_s` -> one trial call.

    The trial call's success closes the circuit, its failure opens it again for another `reset_s`.
    Thread-safe. `kind` words name what failed ("timeout", "connection failure") for `describe()`.
    """

    def __init__(
        self, name: str, failures: int = 3, reset_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or reset_s <= 0:
            raise ValueError("a circuit breaker needs failures >= 1 and reset_s > 0")
        self.name = name
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._kinds: list[str] = []  # kinds of the current run of consecutive failures
        self._opened_at: float | None = None
        self._trial = False  # a half-open trial call is in flight

    def _state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.reset_s else "open"

    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._state()

    def describe(self) -> str:
        """e.g. 'circuit open after 3 timeouts (retry in 27 s)', 'circuit closed'."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return "circuit closed"
            kinds = set(self._kinds)
            what = _plural(len(self._kinds), kinds.pop() if len(kinds) == 1 else "failure")
            if state == "half-open":
                return f"circuit half-open after {what} (one trial call allowed)"
            assert self._opened_at is not None
            wait = max(1, round(self.reset_s - (self._clock() - self._opened_at)))
            return f"circuit open after {what} (retry in {wait} s)"

    def before_call(self) -> None:
        """Raise CircuitOpen unless a call may go through now (in half-open: only the one trial)."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half-open" and not self._trial:
                self._trial = True
                return
        raise CircuitOpen(
            self.describe() if state == "open" else "circuit half-open: a trial call is in progress"
        )

    def record_success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.info("%s: circuit closed again", self.name)
            self._kinds.clear()
            self._opened_at = None
            self._trial = False

    def record_failure(self, kind: str = "failure") -> None:
        with self._lock:
            self._kinds.append(kind)
            trial, self._trial = self._trial, False
            if trial or (self._opened_at is None and len(self._kinds) >= self.failures):
                self._opened_at = self._clock()
                log.warning("%s: circuit open after %s", self.name, _plural(len(self._kinds), kind))

    def abandon(self) -> None:
        """The call ended without saying anything about the server (e.g. no pool slot): free the trial."""
        with self._lock:
            self._trial = False

    def call(self, fn: Callable[[], T], failure_kind: Callable[[BaseException], str | None]) -> T:
        """Run `fn` through the breaker. `failure_kind(exc)` names a failure that counts against the
        server ("timeout"), or returns None when the server answered (an SQL error, an HTTP 404)."""
        self.before_call()
        try:
            result = fn()
        except BaseException as exc:
            if isinstance(exc, PoolTimeout) or not isinstance(exc, Exception):
                self.abandon()  # our own contention or an interrupt: says nothing about the server
            elif (kind := failure_kind(exc)) is not None:
                self.record_failure(kind)
            else:
                self.record_success()  # the server answered, if with an error
            raise
        self.record_success()
        return result


def call_backend(breaker: CircuitBreaker, fn: Callable[[], T], error: type[E], where: str) -> T:
    """Run `fn` through the breaker: an `error` counts against it by its `kind`; an open circuit fails
    at once with an `error` saying "<where> not called: circuit open ..." and what to do."""
    try:
        return breaker.call(fn, lambda exc: exc.kind if isinstance(exc, error) else None)
    except CircuitOpen as exc:
        fix = "its last calls got no answer; `opscopilot doctor` checks it now"
        raise error(f"{where} not called: {exc}", fix=fix) from None


class BoundedPool(Generic[C]):
    """At most `size` connections to one server; `acquire` blocks up to a timeout for a free one.

    Idle connections are reused; a connection the caller reports broken is closed, never handed out
    again. Counters: `opened` (connections created), `in_use`, `idle`. Thread-safe.
    """

    def __init__(
        self, name: str, factory: Callable[[], C], size: int, close: Callable[[C], None] = lambda c: None
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs size >= 1")
        self.name = name
        self.size = size
        self._factory = factory
        self._close = close
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: deque[C] = deque()
        self.opened = 0
        self.in_use = 0

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def acquire(self, timeout_s: float) -> tuple[C, bool]:
        """A connection and whether it is fresh (just opened) rather than reused."""
        if not self._slots.acquire(timeout=timeout_s):
            raise PoolTimeout(f"{self.name}: all {_plural(self.size, 'connection')} busy for {timeout_s:g} s")
        with self._lock:
            conn = self._idle.pop() if self._idle else None
            self.in_use += 1
        if conn is not None:
            return conn, False
        try:
            conn = self._factory()
        except BaseException:
            with self._lock:
                self.in_use -= 1
            self._slots.release()
            raise
        with self._lock:
            self.opened += 1
        return conn, True

    def release(self, conn: C, broken: bool = False) -> None:
        try:
            if broken:
                self._discard(conn)
            else:
                with self._lock:
                    self._idle.append(conn)
        finally:
            with self._lock:
                self.in_use -= 1
            self._slots.release()

    @contextmanager
    def connection(
        self, timeout_s: float, broken: Callable[[BaseException], bool] = lambda exc: True
    ) -> Iterator[tuple[C, bool]]:
        """`with pool.connection(5) as (conn, fresh):` - released on exit, discarded when `broken(exc)`."""
        conn, fresh = self.acquire(timeout_s)
        try:
            yield conn, fresh
        except BaseException as exc:
            self.release(conn, broken=not isinstance(exc, Exception) or broken(exc))
            raise
        self.release(conn)

    def clear(self) -> None:
        """Close every idle connection (e.g. after the server restarted); busy ones close on release."""
        with self._lock:
            idle, self._idle = list(self._idle), deque()
        for conn in idle:
            self._discard(conn)

    close = clear

    def _discard(self, conn: C) -> None:
        try:
            self._close(conn)
        except Exception as exc:  # a connection that will not close cleanly is gone anyway
            log.debug("%s: closing a connection failed: %s", self.name, exc)


def guarded_call(
    breaker: CircuitBreaker,
    pool: BoundedPool[C],
    fn: Callable[[C, bool], T],
    *,
    acquire_timeout_s: float,
    failure_kind: Callable[[BaseException], str | None],
    broken: Callable[[BaseException], bool] = lambda exc: True,
) -> T:
    """Breaker first (fail fast when open), then a pooled connection, then `fn(conn, fresh)`.

    Failures that `failure_kind` names count against the breaker; a `PoolTimeout` (the copilot's own
    contention) does not. Connections for which `broken(exc)` holds are discarded.
    """

    def run() -> T:
        with pool.connection(acquire_timeout_s, broken) as (conn, fresh):
            return fn(conn, fresh)

    return breaker.call(run, failure_kind)
