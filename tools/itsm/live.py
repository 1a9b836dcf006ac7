"""Live ITSM: the retrying HTTP client the ServiceNow, Jira and PagerDuty backends share, and the
one ItsmSource that merges them and keeps one system's failure from hiding the others."""

from __future__ import annotations

import email.utils
import functools
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from tools.estate import JiraConfig, PagerDutyConfig, ServiceNowConfig
from tools.isolation import gather
from tools.resilience import CircuitBreaker, CircuitOpen
from tools.sources import SourceCheck, SourceError
from tools.world import ItsmChange, ItsmIncident

if TYPE_CHECKING:
    from tools.itsm.pagerduty import OnCall

log = logging.getLogger(__name__)

RETRY_STATUS = {429, 500, 502, 503, 504}
MAX_RECORDS = 1000  # per query: the newest first; more than this is cut off with a log line


class ApiError(SourceError):
    """An ITSM API answered with an error (or not at all). `status` is None for transport errors."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HttpApi:
    """One REST API: base URL, auth, timeouts, and retries with exponential backoff and jitter on
    429/5xx and transport errors, honouring Retry-After. 401/403 and other 4xx fail at once with a
    message that says what to check; credentials never appear in messages. A circuit breaker opens
    after `breaker_failures` calls in a row failed for want of a server (transport errors, 5xx
    after all retries) and fails calls at once for `breaker_reset_s`."""

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        timeout_s: float,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        auth_hint: str = "check the credentials",
        retries: int = 3,
        backoff_s: float = 0.5,
        max_wait_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        breaker_failures: int = 3,
        breaker_reset_s: float = 30.0,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/")
        self.auth_hint = auth_hint
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self.breaker = CircuitBreaker(f"{system} {self.base_url}", breaker_failures, breaker_reset_s)
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"User-Agent": "opscopilot", **(headers or {})},
            auth=auth,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def get(self, path: str, params: Any = None) -> Any:
        return self._json(self.request("GET", path, params=params))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._json(self.request("POST", path, json=body))

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise ApiError(
                f"{self.system} {response.request.method} {response.request.url.path} answered "
                f"HTTP {response.status_code} with {kind}, not JSON: check the URL ({self.base_url})",
                response.status_code,
            ) from None

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None) -> httpx.Response:
        try:
            return self.breaker.call(lambda: self._request(method, path, params, json), _server_failure)
        except CircuitOpen as exc:
            raise ApiError(f"{self.system} at {self.base_url} not called: {exc}") from None

    def _request(self, method: str, path: str, params: Any, json: Any) -> httpx.Response:
        where = f"{self.system} {method} {self.base_url}{path}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._client.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
                if last:
                    raise ApiError(
                        f"{where} {kind} after {attempt + 1} tries ({type(exc).__name__}); "
                        f"check that {self.base_url} is reachable from this host (DNS, proxy, firewall)"
                    ) from None
                self._wait(attempt, None, f"{kind}: {type(exc).__name__}", where)
                continue
            if response.status_code < 300:
                return response
            if response.status_code < 400:
                raise ApiError(
                    f"{where} was redirected (HTTP {response.status_code}) to "
                    f"{response.headers.get('Location', '?')}: check the URL (a sleeping or SSO-only "
                    "instance redirects to a login page)",
                    response.status_code,
                )
            if response.status_code in (401, 403):
                raise ApiError(self._auth_message(response, where), response.status_code)
            if response.status_code not in RETRY_STATUS:
                raise ApiError(
                    f"{where} rejected the request: HTTP {response.status_code} {_reason(response)}",
                    response.status_code,
                )
            retry_after = _retry_after(response)
            if last or (retry_after is not None and retry_after > self.max_wait_s):
                after = f" (Retry-After {retry_after:.0f} s)" if retry_after is not None else ""
                raise ApiError(
                    f"{where} still failing after {attempt + 1} tries: HTTP {response.status_code}"
                    f"{after} {_reason(response)}",
                    response.status_code,
                )
            self._wait(attempt, retry_after, f"HTTP {response.status_code}", where)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _wait(self, attempt: int, retry_after: float | None, why: str, where: str) -> None:
        delay = retry_after if retry_after is not None else self.backoff_s * 2**attempt
        delay = min(self.max_wait_s, delay) + random.uniform(0, self.backoff_s / 4)
        log.info(
            "%s: %s, retrying in %.1f s (try %d of %d)", where, why, delay, attempt + 2, self.retries + 1
        )
        self._sleep(delay)

    def _auth_message(self, response: httpx.Response, where: str) -> str:
        if response.status_code == 401:
            return (
                f"{self.system} authentication failed (HTTP 401) at {self.base_url}: {self.auth_hint}. "
                f"Not retried. {_reason(response)}".strip()
            )
        return (
            f"{where} is forbidden (HTTP 403): the credentials work but lack read permission; "
            f"{self.auth_hint}. {_reason(response)}".strip()
        )


def _server_failure(exc: BaseException) -> str | None:
    """What counts against an API's circuit: no answer at all, or a 5xx after every retry."""
    if not isinstance(exc, ApiError) or (exc.status is not None and exc.status < 500):
        return None  # the server answered (401, 404, 429 ...)
    if exc.status is not None:
        return "server error"
    return "timeout" if "timed out" in str(exc) else "connection failure"


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _reason(response: httpx.Response) -> str:
    """The error text an ITSM API put in its body (ServiceNow, Jira and PagerDuty shapes)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    parts: list[str] = []
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            parts += [str(err[k]) for k in ("message", "detail") if err.get(k)]
            parts += [str(e) for e in err.get("errors") or []]
        elif isinstance(err, str):
            parts.append(err)
        parts += [str(m) for m in body.get("errorMessages") or []]
        errors = body.get("errors")
        if isinstance(errors, dict):
            parts += [f"{k}: {v}" for k, v in errors.items()]
    return "; ".join(parts)[:300]


class CiCache:
    """The configuration item names a backend last read, re-read once they are `ttl_s` old."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._cached: tuple[float, set[str]] | None = None

    def get(self, read: Callable[[], set[str]]) -> set[str]:
        """A copy of the cached names, or of what `read()` returns when there are none fresh enough."""
        if self._cached and time.monotonic() - self._cached[0] < self.ttl_s:
            return set(self._cached[1])
        names = read()
        self._cached = (time.monotonic(), names)
        return set(names)


CI_CACHE_S = 300.0  # how long the CI names an ITSM system reports are reused


class ItsmClient:
    """What the ServiceNow, Jira and PagerDuty clients share: one HttpApi, a CI cache, close()."""

    name: str

    def _connect(
        self,
        system: str,
        url: str,
        timeout_s: float,
        *,
        headers: dict[str, str],
        auth_hint: str,
        auth: tuple[str, str] | None = None,
        retries: int,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None],
    ) -> None:
        self.api = HttpApi(
            system,
            url,
            timeout_s=timeout_s,
            headers={"Accept": "application/json", **headers},
            auth=auth,
            auth_hint=auth_hint,
            retries=retries,
            transport=transport,
            sleep=sleep,
        )
        self._cis = CiCache(CI_CACHE_S)

    def close(self) -> None:
        self.api.close()


class _Backend(Protocol):
    name: str

    def configuration_items(self) -> set[str]: ...
    def incidents(self, *, ci: str | None = None, open_only: bool = True) -> list[ItsmIncident]: ...
    def changes(self, *, start: datetime, end: datetime, ci: str | None = None) -> list[ItsmChange]: ...
    def doctor(self) -> list[SourceCheck]: ...


class _Misconfigured:
    """Stands in for a system whose settings cannot work (e.g. no credentials): every read fails
    with the reason and doctor() reports it, instead of the server failing to start."""

    def __init__(self, name: str, target: str, reason: str) -> None:
        self.name, self.target, self.reason = name, target, reason

    def configuration_items(self) -> set[str]:
        raise SourceError(f"{self.name} is misconfigured: {self.reason}")

    def incidents(self, *, ci: str | None = None, open_only: bool = True) -> list[ItsmIncident]:
        raise SourceError(f"{self.name} is misconfigured: {self.reason}")

    def changes(self, *, start: datetime, end: datetime, ci: str | None = None) -> list[ItsmChange]:
        raise SourceError(f"{self.name} is misconfigured: {self.reason}")

    def doctor(self) -> list[SourceCheck]:
        return [
            SourceCheck(
                source=self.name, kind="itsm", target=self.target, reachable=False,
                detail=f"misconfigured: {self.reason}", fix=f"fix the {self.name} settings: {self.reason}",
            )
        ]  # fmt: skip


def _backend(system: Any) -> Any:
    """A backend for a settings object (ServiceNowConfig, JiraConfig, PagerDutyConfig); anything
    else is taken to be a ready backend (tests pass ones with their own options)."""
    from tools.itsm.jira import JiraItsm
    from tools.itsm.pagerduty import PagerDutyItsm
    from tools.itsm.servicenow import ServiceNowItsm

    build: dict[type, tuple[str, Callable[[Any], Any]]] = {
        ServiceNowConfig: ("servicenow", ServiceNowItsm),
        JiraConfig: ("jira", JiraItsm),
        PagerDutyConfig: ("pagerduty", PagerDutyItsm),
    }
    if type(system) not in build:
        return system
    name, make = build[type(system)]
    try:
        return make(system)
    except ValueError as exc:
        log.warning("itsm %s: %s", name, exc)
        return _Misconfigured(name, system.url, str(exc))


class LiveItsm:
    """ItsmSource over every configured ITSM system: results are merged (newest first); a system
    that fails is logged and left out while the others answer. Only when every configured system
    fails does a call raise, with all their reasons. `failures` holds the last call's failures.

    Each argument is that system's settings (ServiceNowConfig, JiraConfig, PagerDutyConfig), a
    ready backend (ServiceNowItsm, JiraItsm, PagerDutyItsm), or None when it is not used.
    """

    def __init__(
        self,
        servicenow: ServiceNowConfig | _Backend | None = None,
        jira: JiraConfig | _Backend | None = None,
        pagerduty: PagerDutyConfig | _Backend | None = None,
    ) -> None:
        """A system that fails while the others answer is noted for the current run
        (`tools.isolation`), so a partial answer says so in the report."""
        built = [_backend(s) for s in (servicenow, jira, pagerduty)]
        self.backends: list[_Backend] = [b for b in built if b is not None]
        self._pagerduty = built[2] if hasattr(built[2], "oncalls") else None
        self.failures: dict[str, str] = {}

    def _each(self, what: str, read: Callable[[_Backend], list[Any]]) -> list[Any]:
        if not self.backends:
            raise SourceError("no ITSM system is configured (servicenow, jira or pagerduty)")
        found = gather(
            [(b.name, functools.partial(read, b)) for b in self.backends],
            f"itsm {what}",
            note_for=lambda name, why: (
                f"ITSM {name} did not answer ({what}): {why}; other systems were still read"
            ),
        )
        self.failures = found.failures
        if found.all_failed:
            raise SourceError(
                f"every ITSM system failed reading {what}: " + " | ".join(found.failures.values())
            )
        return [item for items in found.values for item in items]

    def configuration_items(self) -> set[str]:
        try:
            return set().union(*self._each("configuration items", lambda b: [b.configuration_items()]))
        except SourceError as exc:  # the inventory must not fail on ITSM
            log.warning("%s", exc)
            return set()

    def incidents(self, *, ci: str | None = None, open_only: bool = True) -> list[ItsmIncident]:
        found = self._each("incidents", lambda b: b.incidents(ci=ci, open_only=open_only))
        return sorted(found, key=lambda i: i.opened_at or datetime.min.replace(tzinfo=UTC), reverse=True)

    def changes(self, *, start: datetime, end: datetime, ci: str | None = None) -> list[ItsmChange]:
        found = self._each("changes", lambda b: b.changes(start=start, end=end, ci=ci))
        return sorted(found, key=lambda c: c.start_date or datetime.min.replace(tzinfo=UTC), reverse=True)

    def oncalls(self) -> list[OnCall]:
        """Who is on call now (PagerDuty); empty without PagerDuty."""
        return list(self._pagerduty.oncalls()) if self._pagerduty is not None else []

    def doctor(self) -> list[SourceCheck]:
        return [check for backend in self.backends for check in backend.doctor()]

    def close(self) -> None:
        """Close every backend's HTTP connections."""
        for backend in self.backends:
            close = getattr(backend, "close", None)
            if close is not None:
                close()


Probe = Callable[[], tuple[str, str | None]]  # -> (what was found, how to fix a permission gap or None)


def api_check(api: HttpApi, source: str, probe: Probe, fix_401: str, fix_403: str) -> SourceCheck:
    """Run one doctor probe against an ITSM API and describe the outcome as a SourceCheck."""
    check = SourceCheck(source=source, kind="itsm", target=api.base_url, reachable=False)
    started = time.monotonic()
    try:
        check.detail, gap = probe()
        check.reachable, check.authenticated, check.permissions_ok = True, True, gap is None
        check.fix = gap or ""
    except ApiError as exc:
        check.detail = str(exc)
        if exc.status == 401:
            check.reachable, check.authenticated, check.fix = True, False, fix_401
        elif exc.status == 403:
            check.reachable, check.authenticated, check.permissions_ok, check.fix = True, True, False, fix_403
        elif exc.status is not None:
            check.reachable, check.fix = True, "see detail: the API rejected the probe request"
        else:
            check.fix = f"check that {api.base_url} is reachable from this host (DNS, proxy, firewall)"
    except Exception as exc:  # doctor reports, it never raises
        log.warning("%s doctor failed: %s", source, exc, exc_info=True)
        check.detail, check.fix = f"{type(exc).__name__}: {exc}", "see the server log"
    check.latency_ms = round((time.monotonic() - started) * 1000, 1)
    check.circuit = api.breaker.state
    return check
