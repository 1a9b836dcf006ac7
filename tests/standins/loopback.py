"""What every stand-in HTTP server runs on: a threaded server on a random loopback port, a quiet handler."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output clean and answers in one call."""

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        """The status, the headers in order, Content-Length, the body."""
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LoopbackServer:
    """`handler` served on 127.0.0.1 at a random port from a daemon thread, until `close()`."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        name: str | None = None,
        poll_interval: float = 0.5,
        daemon_threads: bool = False,
    ) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = daemon_threads
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
