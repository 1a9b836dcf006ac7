"""Live SNMP backend: poll switches, routers and firewalls (v2c or v3) with pysnmp, two samples apart.

Only numeric OIDs are used (no MIB is loaded or compiled): the system group, IF-MIB's ifTable and
ifXTable. 64-bit counters (ifHCInOctets/ifHCOutOctets) and ifHighSpeed win where the agent has
them. pysnmp is asyncio-only; every poller owns one private event loop on a daemon thread, so
`poll` and `doctor` are plain blocking calls that work from any thread, with or without a running
loop of the caller's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pysnmp.proto import errind

from tools.estate import SnmpDeviceConfig
from tools.network.snmp_session import (
    AUTH_PROTOCOLS,
    IF_COLUMNS,
    MAX_VARBINDS,
    MAX_WALK_REQUESTS,
    PRIV_PROTOCOLS,
    SYSTEM,
    EngineFailure,
    LoopThread,
    Oid,
    Sample,
    SnmpSession,
    SnmpUnreachable,
)
from tools.resilience import CircuitBreaker, CircuitOpen
from tools.sources import DevicePoll, SourceCheck, SourceError
from tools.world import DeviceSample, Interface, SnmpDevice

__all__ = [  # the session names stay importable from here
    "AUTH_FAILURES",
    "AUTH_FIX",
    "AUTH_PROTOCOLS",
    "IF_COLUMNS",
    "IF_STATUS",
    "MAX_VARBINDS",
    "MAX_WALK_REQUESTS",
    "PRIV_PROTOCOLS",
    "SYSTEM",
    "Oid",
    "SnmpPoller",
    "SnmpUnreachable",
]

log = logging.getLogger(__name__)

IF_STATUS = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}
AUTH_FAILURES = (
    errind.WrongDigest,
    errind.UnknownUserName,
    errind.UnsupportedSecurityLevel,
    errind.AuthenticationFailure,
    errind.AuthenticationError,
    errind.DecryptionError,
    errind.UnknownSecurityName,
)
AUTH_FIX = "authentication failed: check the v3 user/keys"


def _text(value: Any) -> str:
    raw = value.asOctets() if hasattr(value, "asOctets") else str(value).encode()
    return raw.decode("utf-8", errors="replace").rstrip("\x00").strip()


def _number(value: Any) -> float | None:
    try:
        return float(int(value))
    except (TypeError, ValueError):
        return None


def _interfaces(sample: Sample, high_capacity: set[int]) -> list[Interface]:
    """Interfaces of one sample; `high_capacity` are the ifIndexes read from 64-bit octet counters."""
    col = sample.columns
    indexes = sorted(set(col["ifDescr"]) | set(col["ifOperStatus"]) | set(col["ifName"]))
    out = []
    for ix in indexes:

        def num(name: str, ix: int = ix) -> float | None:
            return _number(col[name][ix]) if ix in col[name] else None

        descr = _text(col["ifDescr"][ix]) if ix in col["ifDescr"] else ""
        name = _text(col["ifName"][ix]) if ix in col["ifName"] else ""
        high_speed, speed = num("ifHighSpeed"), num("ifSpeed")
        hc = ix in high_capacity
        out.append(
            Interface(
                ifIndex=ix,
                ifDescr=descr or name or f"ifIndex {ix}",
                ifAdminStatus=IF_STATUS.get(int(num("ifAdminStatus") or 4), "unknown"),  # type: ignore[arg-type]
                ifOperStatus=IF_STATUS.get(int(num("ifOperStatus") or 4), "unknown"),  # type: ignore[arg-type]
                ifSpeed=high_speed * 1e6 if high_speed else (speed or None),
                ifInOctets=num("ifHCInOctets") if hc else num("ifInOctets"),
                ifOutOctets=num("ifHCOutOctets") if hc else num("ifOutOctets"),
                ifInErrors=num("ifInErrors"),
                ifOutErrors=num("ifOutErrors"),
                ifInDiscards=num("ifInDiscards"),
            )
        )
    return out


def _high_capacity(*samples: Sample) -> set[int]:
    """ifIndexes whose 64-bit octet counters are in every sample (so both deltas use the same kind)."""
    sets = [set(s.columns["ifHCInOctets"]) & set(s.columns["ifHCOutOctets"]) for s in samples]
    return set.intersection(*sets) if sets else set()


class SnmpPoller:
    """SnmpSource over live devices: each poll reads every interface twice, `sample_interval_s` apart.

    Unreachable devices, wrong credentials and refused reads become `SourceError`s that say what
    to check. After `breaker_failures` polls of a device in a row got no answer, its circuit opens
    and polls fail at once for `breaker_reset_s` (then one trial poll goes through). `doctor()`
    reports reachability, v3 authentication, read permission, latency and the circuit.
    """

    def __init__(
        self, devices: list[SnmpDeviceConfig], *, breaker_failures: int = 3, breaker_reset_s: float = 30.0
    ) -> None:
        self._devices = {d.name: d for d in devices}
        self._loop = LoopThread("snmp-poller")
        self._breakers = {
            d.name: CircuitBreaker(f"snmp:{d.name}", breaker_failures, breaker_reset_s) for d in devices
        }

    def devices(self) -> dict[str, str]:
        return {name: cfg.address for name, cfg in self._devices.items()}

    def close(self) -> None:
        """Stop the poller's event loop thread (it is restarted by the next poll)."""
        self._loop.close()

    def __enter__(self) -> SnmpPoller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _config(self, device: str) -> SnmpDeviceConfig:
        cfg = self._devices.get(device)
        if cfg is None:
            known = ", ".join(sorted(self._devices)) or "none"
            raise SourceError(f"no SNMP device named {device!r} is configured; known devices: {known}")
        return cfg

    def _budget(self, cfg: SnmpDeviceConfig) -> float:
        """Worst case for one sample: every request of a long walk waiting out all its retries."""
        return 30 * cfg.timeout_s * (cfg.retries + 1)

    def poll(self, device: str) -> DevicePoll:
        cfg = self._config(device)
        budget = cfg.sample_interval_s + 2 * self._budget(cfg) + 5
        try:
            return self._breakers[device].call(
                lambda: self._loop.run(self._poll(cfg), budget),
                lambda exc: "timeout" if isinstance(exc, SnmpUnreachable) else None,
            )
        except CircuitOpen as exc:
            raise SourceError(
                f"SNMP device {device} ({cfg.address}:{cfg.port}) not polled: {exc}; "
                "its last polls got no answer (see `opscopilot doctor`)"
            ) from None

    async def _poll(self, cfg: SnmpDeviceConfig) -> DevicePoll:
        session = SnmpSession(cfg)
        try:
            await session.open()
            first = await session.sample()
            await asyncio.sleep(max(0.0, cfg.sample_interval_s - (time.monotonic() - first.taken_at)))
            second = await session.sample()
        except EngineFailure as exc:
            raise await self._explain(cfg, exc.indication) from None
        finally:
            session.close()
        hc = _high_capacity(first, second)
        current = SnmpDevice(
            address=cfg.address,
            sysName=_text(second.system["sysName"]) if "sysName" in second.system else None,
            sysDescr=_text(second.system["sysDescr"]) if "sysDescr" in second.system else None,
            sysUpTime=_number(second.system.get("sysUpTime")),
            interfaces=_interfaces(second, hc),
        )
        previous = DeviceSample(
            interfaces=_interfaces(first, hc), sysUpTime=_number(first.system.get("sysUpTime"))
        )
        age = second.taken_at - first.taken_at
        current.previous, current.previous_age_s = previous, age
        return DevicePoll(device=cfg.name, current=current, previous=previous, age_s=age)

    async def _explain(self, cfg: SnmpDeviceConfig, indication: Any) -> SourceError:
        """Turn an engine error into what the operator should check."""
        where = f"SNMP device {cfg.name} ({cfg.address}:{cfg.port}, v{cfg.version})"
        if isinstance(indication, AUTH_FAILURES):
            keys = f"user {cfg.user!r}, auth {cfg.auth_protocol}, priv {cfg.priv_protocol}"
            return SourceError(f"{where}: {AUTH_FIX} ({indication}; {keys})")
        if isinstance(indication, errind.RequestTimedOut):
            tries = f"{cfg.timeout_s:g} s x {cfg.retries + 1} tries"
            if cfg.version == "3" and await self._answers_discovery(cfg):
                return SourceError(
                    f"{where}: {AUTH_FIX} (the agent answers but ignores requests with these keys within "
                    f"{tries}: most likely a wrong privacy key or privacy protocol {cfg.priv_protocol})"
                )
            community = (
                " and the community string (a wrong community is silently ignored)"
                if cfg.version == "2c"
                else ""
            )
            return SnmpUnreachable(
                f"{where}: no SNMP response within {tries}; check the address and port, that UDP {cfg.port} "
                f"is allowed from this host (firewall, ACL), that the agent is running{community}"
            )
        return SourceError(f"{where}: SNMP error: {indication}")

    async def _answers_discovery(self, cfg: SnmpDeviceConfig) -> bool:
        """Does the agent answer at all? A noAuthNoPriv probe for the user gets a report or a refusal."""
        probe = SnmpSession(cfg.model_copy(update={"auth_key": None, "priv_key": None, "retries": 0}))
        try:
            await probe.open()
            await probe.get({"sysUpTime": SYSTEM["sysUpTime"]})
            return True
        except EngineFailure as exc:
            return not isinstance(exc.indication, errind.RequestTimedOut)
        except SourceError:
            return True  # refused by the agent's access control: it is there
        finally:
            probe.close()

    def doctor(self) -> list[SourceCheck]:
        """One check per device, all probed at once (a dead device costs its timeouts only once)."""
        if not self._devices:
            return []
        budget = max(2 * self._budget(cfg) for cfg in self._devices.values()) + 5

        async def every() -> list[SourceCheck]:
            return list(await asyncio.gather(*(self._check(cfg) for cfg in self._devices.values())))

        try:
            return self._loop.run(every(), budget)
        except SourceError as exc:  # the whole doctor ran out of time: report that per device
            return [
                SourceCheck(source=f"snmp:{c.name}", kind="snmp", target=f"{c.address}:{c.port}",
                            reachable=False, detail=str(exc), fix="check the device and its timeouts")
                for c in self._devices.values()
            ]  # fmt: skip

    async def _check(self, cfg: SnmpDeviceConfig) -> SourceCheck:
        check = SourceCheck(
            source=f"snmp:{cfg.name}",
            kind="snmp",
            target=f"{cfg.address}:{cfg.port}",
            reachable=False,
            circuit=self._breakers[cfg.name].state,
        )
        try:
            await self._probe(cfg, check)
        except SourceError as exc:
            check.detail = str(exc)
            if AUTH_FIX in check.detail:
                check.reachable, check.authenticated = True, False
                check.fix = (
                    f"{AUTH_FIX}: user {cfg.user!r}, auth {cfg.auth_protocol}, priv {cfg.priv_protocol}"
                )
            elif "refused to read" in check.detail:
                check.reachable, check.authenticated, check.permissions_ok = True, True, False
                check.fix = "grant the SNMP view read access to the system group, ifTable and ifXTable"
            elif "no SNMP response" in check.detail:
                check.fix = check.detail.split("; ", 1)[-1]
            else:
                check.fix = "check the device's address and SNMP settings"
        except Exception as exc:  # doctor reports, it never raises
            log.warning("snmp doctor %s failed: %s", cfg.name, exc, exc_info=True)
            check.detail, check.fix = f"{type(exc).__name__}: {exc}", "see the server log"
        if check.circuit != "closed":
            check.detail += f"; polls: {self._breakers[cfg.name].describe()}"
        return check

    async def _probe(self, cfg: SnmpDeviceConfig, check: SourceCheck) -> None:
        session = SnmpSession(cfg)
        try:
            await session.open()
            started = time.monotonic()
            system = await session.get(SYSTEM)
            check.latency_ms = round((time.monotonic() - started) * 1000, 1)
            check.reachable, check.authenticated = True, True
            names = await session.walk({"ifDescr": IF_COLUMNS["ifDescr"]})
            count = len(names["ifDescr"])
            check.permissions_ok = bool(system) and count > 0
            sys_name = _text(system["sysName"]) if "sysName" in system else "?"
            check.detail = f"sysName {sys_name}, {count} interfaces, v{cfg.version}"
            if not check.permissions_ok:
                check.fix = "the agent's view hides the system group or ifTable: grant read access to them"
        except EngineFailure as exc:
            raise await self._explain(cfg, exc.indication) from None
        finally:
            session.close()
