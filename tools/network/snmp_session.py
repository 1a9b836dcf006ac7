"""SNMP sessions with pysnmp: one engine per device and poll, GET and GETBULK walks, a private asyncio loop.

Only numeric OIDs are used (no MIB is loaded or compiled). pysnmp is asyncio-only: a LoopThread owns
one event loop on a daemon thread, and blocking callers submit coroutines to it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES_BLUMENTHAL,
    USM_PRIV_CFB256_AES_BLUMENTHAL,
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
)
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from tools.estate import SnmpDeviceConfig
from tools.sources import SourceError

log = logging.getLogger("tools.network.snmp")

Oid = tuple[int, ...]
T = TypeVar("T")

SYSTEM: dict[str, Oid] = {
    "sysDescr": (1, 3, 6, 1, 2, 1, 1, 1, 0),
    "sysUpTime": (1, 3, 6, 1, 2, 1, 1, 3, 0),
    "sysName": (1, 3, 6, 1, 2, 1, 1, 5, 0),
}
_IF = (1, 3, 6, 1, 2, 1, 2, 2, 1)  # IF-MIB::ifEntry
_IFX = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)  # IF-MIB::ifXEntry
IF_COLUMNS: dict[str, Oid] = {
    "ifDescr": (*_IF, 2),
    "ifSpeed": (*_IF, 5),
    "ifAdminStatus": (*_IF, 7),
    "ifOperStatus": (*_IF, 8),
    "ifInOctets": (*_IF, 10),
    "ifInDiscards": (*_IF, 13),
    "ifInErrors": (*_IF, 14),
    "ifOutOctets": (*_IF, 16),
    "ifOutErrors": (*_IF, 20),
    "ifName": (*_IFX, 1),
    "ifHCInOctets": (*_IFX, 6),
    "ifHCOutOctets": (*_IFX, 10),
    "ifHighSpeed": (*_IFX, 15),
}
AUTH_PROTOCOLS = {
    "MD5": USM_AUTH_HMAC96_MD5,
    "SHA": USM_AUTH_HMAC96_SHA,
    "SHA224": USM_AUTH_HMAC128_SHA224,
    "SHA256": USM_AUTH_HMAC192_SHA256,
    "SHA384": USM_AUTH_HMAC256_SHA384,
    "SHA512": USM_AUTH_HMAC384_SHA512,
}
# AES192/AES256 as Net-SNMP and RFC drafts localize keys (Blumenthal); Cisco's variant differs.
PRIV_PROTOCOLS = {
    "DES": USM_PRIV_CBC56_DES,
    "AES": USM_PRIV_CFB128_AES,
    "AES192": USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": USM_PRIV_CFB256_AES_BLUMENTHAL,
}
MAX_VARBINDS = 60  # per GETBULK response: columns x repetitions, well under a 1500-byte-ish PDU budget
MAX_WALK_REQUESTS = 400  # a table walk that needs more than this is cut short, not looped forever


class SnmpUnreachable(SourceError):
    """No answer from the device within its timeouts, or an address that does not resolve.
    Only these count against the device's circuit breaker (a wrong key is an answer)."""


class EngineFailure(Exception):
    """An SNMP engine error indication (timeout, wrong digest ...), explained by the poller."""

    def __init__(self, indication: Any) -> None:
        super().__init__(str(indication))
        self.indication = indication


@dataclass
class Sample:
    """One walk of the system group and the interface tables."""

    taken_at: float  # time.monotonic() half-way through the interface walk: the counters' moment
    system: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, dict[int, Any]] = field(default_factory=dict)


class SnmpSession:
    """One SNMP engine talking to one device for the length of a poll (lives on the loop thread)."""

    def __init__(self, cfg: SnmpDeviceConfig) -> None:
        self.cfg = cfg
        self.engine = SnmpEngine()
        self.auth = _credentials(cfg)
        self.target: UdpTransportTarget | None = None

    async def open(self) -> None:
        try:
            self.target = await UdpTransportTarget.create(
                (self.cfg.address, self.cfg.port), timeout=self.cfg.timeout_s, retries=self.cfg.retries
            )
        except PySnmpError as exc:
            raise SnmpUnreachable(
                f"SNMP device {self.cfg.name}: cannot use address {self.cfg.address!r} ({exc}); "
                "check the address (DNS name or IP) in the estate settings"
            ) from None

    def close(self) -> None:
        self.engine.close_dispatcher()

    async def get(self, oids: dict[str, Oid]) -> dict[str, Any]:
        assert self.target is not None
        binds = [ObjectType(ObjectIdentity(oid)) for oid in oids.values()]
        indication, status, index, out = await get_cmd(
            self.engine, self.auth, self.target, ContextData(), *binds, lookupMib=False
        )
        self._raise(indication, status, index, list(oids.values()))
        values = {}
        for name, (_oid, value) in zip(oids, out, strict=False):
            if not isinstance(value, NoSuchObject | NoSuchInstance | EndOfMibView):
                values[name] = value
        return values

    async def walk(self, columns: dict[str, Oid]) -> dict[str, dict[int, Any]]:
        """GETBULK over several table columns at once, each until it leaves its own subtree."""
        assert self.target is not None
        found: dict[str, dict[int, Any]] = {name: {} for name in columns}
        cursor = dict(columns)
        active = list(columns)
        for _ in range(MAX_WALK_REQUESTS):
            if not active:
                return found
            reps = max(1, MAX_VARBINDS // len(active))
            binds = [ObjectType(ObjectIdentity(cursor[name])) for name in active]
            indication, status, index, out = await bulk_cmd(
                self.engine, self.auth, self.target, ContextData(), 0, reps, *binds, lookupMib=False
            )
            self._raise(indication, status, index, [cursor[n] for n in active])
            done: set[str] = set()
            for i, (oid, value) in enumerate(out):
                name = active[i % len(active)]
                if name in done:
                    continue
                here, base = tuple(oid), columns[name]
                if (
                    isinstance(value, EndOfMibView | NoSuchObject | NoSuchInstance)
                    or here[: len(base)] != base
                ):
                    done.add(name)
                elif here <= cursor[name] or len(here) != len(base) + 1:
                    done.add(name)  # a broken agent going backwards, or an unexpected index shape
                else:
                    cursor[name] = here
                    found[name][here[-1]] = value
            if not out:
                done.update(active)
            active = [n for n in active if n not in done]
        log.warning("snmp %s: interface walk cut short after %d requests", self.cfg.name, MAX_WALK_REQUESTS)
        return found

    def _raise(self, indication: Any, status: Any, index: Any, asked: list[Oid]) -> None:
        if indication:
            raise EngineFailure(indication)
        if status:
            at = ".".join(map(str, asked[int(index) - 1])) if 0 < int(index) <= len(asked) else "the request"
            raise SourceError(
                f"SNMP device {self.cfg.name} refused to read {at}: {status.prettyPrint()}; "
                "check that the agent's view (VACM or community ACL) grants read access to the "
                "system group (1.3.6.1.2.1.1), ifTable (1.3.6.1.2.1.2.2) and ifXTable (1.3.6.1.2.1.31.1.1)"
            )

    async def sample(self) -> Sample:
        system = await self.get(SYSTEM)
        started = time.monotonic()
        columns = await self.walk(IF_COLUMNS)
        return Sample(taken_at=(started + time.monotonic()) / 2, system=system, columns=columns)


def _credentials(cfg: SnmpDeviceConfig) -> CommunityData | UsmUserData:
    if cfg.version == "2c":
        assert cfg.community is not None  # the config validator guarantees it
        return CommunityData(cfg.community.get_secret_value(), mpModel=1)
    auth_key = cfg.auth_key.get_secret_value() if cfg.auth_key else None
    priv_key = cfg.priv_key.get_secret_value() if cfg.priv_key else None
    return UsmUserData(
        cfg.user,
        authKey=auth_key,
        privKey=priv_key if auth_key else None,
        authProtocol=AUTH_PROTOCOLS[cfg.auth_protocol or "SHA"] if auth_key else None,
        privProtocol=PRIV_PROTOCOLS[cfg.priv_protocol or "AES"] if (auth_key and priv_key) else None,
    )


class LoopThread:
    """A private asyncio loop on a daemon thread; blocking callers submit coroutines to it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._serve, args=(self._loop,), name=self._name, daemon=True
                )
                self._thread.start()
            loop = self._loop
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise SnmpUnreachable(f"SNMP poll gave no result within {timeout_s:.0f} s") from None

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()
        pending = asyncio.all_tasks(loop)  # let cancelled pysnmp timers finish before the loop closes
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    def close(self) -> None:
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()
