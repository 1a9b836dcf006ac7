"""The web console: its built files (./static, source in ./src, built by scripts/setup) served at `/`.

Fixed file names, `Cache-Control: no-cache` with ETags (browsers revalidate, never run a stale
console), gzip for the bundle. Nothing is loaded from elsewhere: the browser may be offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).resolve().parent / "static"
NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>OpsCopilot</title>
<p>The web console is not built. Run <code>scripts/setup</code> (it builds it with npm), or use the API at
<a href="/api/v1/docs">/api/v1/docs</a>.</p>"""
SECURITY_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


class ConsoleFiles(StaticFiles):
    """Static files that browsers must revalidate (fixed names, ETag) and may not sniff."""

    def file_response(
        self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update({"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
        return response


def mount_console(app: FastAPI, describe: dict[str, Any]) -> None:
    """Serve the console at `/` (its assets under /assets). A client asking `/` for JSON only gets
    `describe` (the API's whereabouts) instead."""
    index = STATIC / "index.html"

    @app.get("/", include_in_schema=False, response_model=None)
    def console(request: Request) -> Response:
        accept = request.headers.get("accept", "")
        if "application/json" in accept and "text/html" not in accept:
            return JSONResponse(describe)
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503, headers={"Cache-Control": "no-cache"})
        return FileResponse(index, media_type="text/html", headers=SECURITY_HEADERS)

    assets = STATIC / "assets"
    if assets.is_dir():
        files = GZipMiddleware(ConsoleFiles(directory=assets), minimum_size=1024)
        app.mount("/assets", files, name="console")
