"""The HTTP plumbing shared by the ITSM stand-ins: a threaded server on a random loopback port
that records every request and can be told to answer the next few requests with a fault
(429 with Retry-After, a 5xx, a stall longer than the client's timeout)."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, overload
from urllib.parse import parse_qs, urlsplit

from tests.standins.loopback import LoopbackServer, QuietHandler


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: Any  # decoded JSON, or None

    @overload
    def one(self, name: str) -> str | None: ...
    @overload
    def one(self, name: str, default: str) -> str: ...
    def one(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def basic(self) -> tuple[str, str] | None:
        """The (user, password) of a Basic Authorization header."""
        auth = self.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return None
        return user, password


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class Rejected(Exception):
    """Raised by a stand-in's handler to answer with an error the way the real API would."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class ApiStandIn:
    """Subclasses implement `handle(request) -> Reply` and check requests like the real API."""

    name = "api"

    def __init__(self) -> None:
        self.seen: list[Request] = []
        self._faults: list[tuple[str, Reply]] = []
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None
        self.url = ""

    # --- to override --------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    # --- test controls ------------------------------------------------------------------------

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        *,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Answer the next `times` requests under `path_prefix` with this fault instead."""
        with self._lock:
            self._faults += [(path_prefix, Reply(status, body, headers or {}, delay_s))] * times

    def stall_next(self, path_prefix: str, seconds: float, *, times: int = 1) -> None:
        """Hold the next requests for `seconds`, then answer them normally (a slow server)."""
        with self._lock:
            self._faults += [(path_prefix, Reply(0, delay_s=seconds))] * times

    def requests_to(self, path_prefix: str) -> list[Request]:
        return [r for r in self.seen if r.path.startswith(path_prefix)]

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> ApiStandIn:
        standin = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = {"_malformed": raw.decode(errors="replace")}
                request = Request(
                    self.command, parts.path, parse_qs(parts.query, keep_blank_values=True), headers, body
                )
                standin.seen.append(request)
                reply = standin._fault_for(parts.path)
                if reply is not None and reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply is None or reply.status == 0:
                    try:
                        reply = standin.handle(request)
                    except Rejected as rejected:
                        reply = rejected.reply
                data = b"" if reply.body is None else json.dumps(reply.body).encode()
                headers = dict(reply.headers)
                if data:
                    headers["Content-Type"] = reply.headers.get("Content-Type", "application/json")
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    self.reply(reply.status, data, headers)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self._server = LoopbackServer(
            Handler, name=f"{self.name}-standin", poll_interval=0.05, daemon_threads=True
        )
        self.url = self._server.url
        return self

    def _fault_for(self, path: str) -> Reply | None:
        with self._lock:
            for i, (prefix, reply) in enumerate(self._faults):
                if path.startswith(prefix):
                    del self._faults[i]
                    return reply
        return None

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> ApiStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
