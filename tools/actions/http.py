"""The HTTP client the API executors share (AWX, Terraform Cloud, PagerDuty Events, ServiceNow, Jira).

Unlike the read-only ITSM client, a request that changes something is never retried once it may have
reached the server: a POST is retried only when the connection could not be opened (nothing was
sent) or the server answered 429 (it did not process it). Reads are retried on transport errors, 429
and 5xx. Every request, with its answer, is added to the executor's trail; credentials never are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from tools.actions.base import Failed, Trail

log = logging.getLogger(__name__)

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
RETRY_STATUS = {429, 500, 502, 503, 504}


class ActionApi:
    """One API: base URL, headers, a timeout per request, bounded retries (see the module docstring)."""

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        headers: dict[str, str],
        timeout_s: float,
        auth_hint: str,
        auth: tuple[str, str] | None = None,
        verify: bool = True,
        retries: int = 2,
        backoff_s: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/")
        self.auth_hint = auth_hint
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"User-Agent": "opscopilot-actions", **headers},
            auth=auth,
            timeout=httpx.Timeout(timeout_s),
            verify=verify,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def call(
        self,
        method: str,
        path: str,
        trail: Trail,
        *,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 202, 204),
    ) -> Any:
        """The decoded JSON answer (None for an empty body); Failed with the API's own reason otherwise."""
        shown = f"{method} {self.base_url}{path}"
        safe = method in SAFE_METHODS
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._client.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                trail.add(f"{shown}: {type(exc).__name__}")
                if last or (sent and not safe):
                    why = (
                        "the request may have reached it, so it is not repeated" if sent and not safe else ""
                    )
                    raise Failed(
                        f"{self.system} {shown} failed ({type(exc).__name__}){'; ' + why if why else ''}; "
                        f"check that {self.base_url} is reachable"
                    ) from None
                self._wait(attempt, None)
                continue
            trail.add(f"{shown} -> HTTP {response.status_code}")
            if response.status_code in ok:
                return _json(response)
            if response.status_code in (401, 403):
                word = "authentication failed" if response.status_code == 401 else "forbidden"
                raise Failed(
                    f"{self.system} {word} (HTTP {response.status_code}) at {shown}: {self.auth_hint}. "
                    f"{reason(response)}".strip()
                )
            retryable = response.status_code == 429 or (safe and response.status_code in RETRY_STATUS)
            if retryable and not last:
                self._wait(attempt, _retry_after(response))
                continue
            why = reason(response)
            raise Failed(
                f"{self.system} {shown} answered HTTP {response.status_code}" + (f": {why}" if why else "")
            )
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        delay = retry_after if retry_after is not None else self.backoff_s * 2**attempt
        self._sleep(min(delay, 30.0))


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise Failed(
            f"{response.request.method} {response.request.url} answered HTTP {response.status_code} with "
            f"{response.headers.get('Content-Type', 'no content type')}, not JSON: check the URL"
        ) from None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def reason(response: httpx.Response) -> str:
    """The error text in the body, in the shapes these APIs use: AWX {"detail"} or field errors,
    JSON:API {"errors": [{"title", "detail"}]}, PagerDuty {"message", "errors"}, ServiceNow
    {"error": {"message", "detail"}}, Jira {"errorMessages", "errors"}."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    parts: list[str] = []
    if isinstance(body, dict):
        for key in ("detail", "message"):
            if isinstance(body.get(key), str):
                parts.append(body[key])
        err = body.get("error")
        if isinstance(err, dict):
            parts += [str(err[k]) for k in ("message", "detail") if err.get(k)]
        errors = body.get("errors")
        if isinstance(errors, list):
            for e in errors:
                if isinstance(e, dict):
                    parts.append(" ".join(str(e[k]) for k in ("title", "detail") if e.get(k)))
                else:
                    parts.append(str(e))
        elif isinstance(errors, dict):
            parts += [f"{k}: {v}" for k, v in errors.items()]
        parts += [str(m) for m in body.get("errorMessages") or []]
        for key, value in body.items():  # AWX field errors: {"limit": ["..."]}
            plain = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            if plain and key not in ("errors", "errorMessages"):
                parts.append(f"{key}: {'; '.join(value)}")
    return "; ".join(p for p in parts if p)[:400]


def bearer(token: SecretStr | None, missing: str) -> dict[str, str]:
    """The Authorization header for a token; ValueError(`missing`) without one."""
    if token is None:
        raise ValueError(missing)
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


class ApiExecutor:
    """What the HTTP executors share: their API client, the sleep and clock they poll with, close()."""

    def __init__(
        self,
        api: ActionApi,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self._sleep = sleep
        self._clock = clock

    def close(self) -> None:
        self.api.close()
