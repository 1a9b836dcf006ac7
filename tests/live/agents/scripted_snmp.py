"""A pysnmp command responder (SNMP v2c) whose IF-MIB counters a test scripts as rates over time.

It is a real agent on a loopback UDP port, built on pysnmp's own transport dispatcher and protocol
API: GET, GETNEXT and GETBULK are decoded and answered from the MIB computed at the moment each
request arrives, so counters really move between a poller's two samples. A request with the
wrong community is dropped without an answer, as real agents do.
"""

from __future__ import annotations

import asyncio
import bisect
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher
from pysnmp.proto import api
from pysnmp.proto.api import v2c

Oid = tuple[int, ...]
IF = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
UP, DOWN = 1, 2
MAX_BULK_VARBINDS = 120


@dataclass
class ScriptedInterface:
    """One interface; counters start at the given values and grow at the given per-second rates."""

    index: int
    name: str
    admin: int = UP
    oper: int = UP
    speed_mbps: int = 1000
    in_octets: int = 10_000_000
    out_octets: int = 20_000_000
    in_octets_per_s: float = 125_000.0
    out_octets_per_s: float = 250_000.0
    in_errors: int = 0
    in_errors_per_s: float = 0.0
    out_errors: int = 0
    in_discards: int = 0
    high_capacity: bool = True  # serve ifXTable 64-bit counters and ifHighSpeed


class ScriptedSnmpAgent:
    """Serve sysDescr/sysUpTime/sysName, ifTable and ifXTable for `interfaces` on 127.0.0.1."""

    def __init__(
        self,
        interfaces: list[ScriptedInterface],
        *,
        community: str = "scripted",
        sys_name: str = "edge-sw-01",
        uptime_s: float = 12 * 86400.0,
    ) -> None:
        self.interfaces = interfaces
        self.community = community
        self.sys_name = sys_name
        self.uptime_s = uptime_s
        self.requests = 0
        self.dropped = 0
        self.port = 0
        self._started = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._dispatcher: AsyncioDispatcher | None = None

    # --- the MIB, computed per request -----------------------------------------------------------

    def mib(self) -> list[tuple[Oid, Any]]:
        """Every object instance with its current value, sorted by OID."""
        elapsed = time.monotonic() - self._started
        rows: list[tuple[Oid, Any]] = [
            ((1, 3, 6, 1, 2, 1, 1, 1, 0), v2c.OctetString("OpsCopilot scripted switch (pysnmp)")),
            ((1, 3, 6, 1, 2, 1, 1, 3, 0), v2c.TimeTicks(int((self.uptime_s + elapsed) * 100) % 2**32)),
            ((1, 3, 6, 1, 2, 1, 1, 5, 0), v2c.OctetString(self.sys_name)),
        ]
        for i in self.interfaces:
            in_oct = int(i.in_octets + i.in_octets_per_s * elapsed)
            out_oct = int(i.out_octets + i.out_octets_per_s * elapsed)
            speed = i.speed_mbps * 1_000_000
            ix = i.index
            rows += [
                ((*IF, 1, ix), v2c.Integer(ix)),
                ((*IF, 2, ix), v2c.OctetString(i.name)),
                ((*IF, 5, ix), v2c.Gauge32(min(speed, 2**32 - 1))),
                ((*IF, 7, ix), v2c.Integer(i.admin)),
                ((*IF, 8, ix), v2c.Integer(i.oper)),
                ((*IF, 10, ix), v2c.Counter32(in_oct % 2**32)),
                ((*IF, 13, ix), v2c.Counter32(i.in_discards)),
                ((*IF, 14, ix), v2c.Counter32(int(i.in_errors + i.in_errors_per_s * elapsed) % 2**32)),
                ((*IF, 16, ix), v2c.Counter32(out_oct % 2**32)),
                ((*IF, 20, ix), v2c.Counter32(i.out_errors)),
            ]
            if i.high_capacity:
                rows += [
                    ((*IFX, 1, ix), v2c.OctetString(i.name)),
                    ((*IFX, 6, ix), v2c.Counter64(in_oct)),
                    ((*IFX, 10, ix), v2c.Counter64(out_oct)),
                    ((*IFX, 15, ix), v2c.Gauge32(i.speed_mbps)),
                ]
        return sorted(rows, key=lambda r: r[0])

    # --- the command responder -------------------------------------------------------------------

    def _answer(self, dispatcher: Any, domain: Any, address: Any, whole: bytes) -> bytes:
        while whole:
            version = int(api.decodeMessageVersion(whole))
            if version not in api.PROTOCOL_MODULES:
                return b""
            pmod = api.PROTOCOL_MODULES[version]
            request, whole = decoder.decode(whole, asn1Spec=pmod.Message())
            if str(pmod.apiMessage.get_community(request)) != self.community:
                self.dropped += 1
                continue
            self.requests += 1
            response = pmod.apiMessage.get_response(request)
            req_pdu = pmod.apiMessage.get_pdu(request)
            rsp_pdu = pmod.apiMessage.get_pdu(response)
            mib = self.mib()
            names = [oid for oid, _ in mib]
            values = dict(mib)
            asked = [tuple(oid) for oid, _ in pmod.apiPDU.get_varbinds(req_pdu)]

            def following(
                oid: Oid, mib: list[tuple[Oid, Any]] = mib, names: list[Oid] = names
            ) -> tuple[Oid, Any]:
                at = bisect.bisect_right(names, oid)
                return mib[at] if at < len(mib) else (oid, v2c.EndOfMibView())

            out: list[tuple[Oid, Any]] = []
            if req_pdu.isSameTypeWith(v2c.GetRequestPDU()):
                out = [(oid, values.get(oid, v2c.NoSuchInstance())) for oid in asked]
            elif req_pdu.isSameTypeWith(v2c.GetNextRequestPDU()):
                out = [following(oid) for oid in asked]
            elif req_pdu.isSameTypeWith(v2c.GetBulkRequestPDU()):
                n = min(int(v2c.apiBulkPDU.get_non_repeaters(req_pdu)), len(asked))
                reps = int(v2c.apiBulkPDU.get_max_repetitions(req_pdu))
                out = [following(oid) for oid in asked[:n]]
                cursor = asked[n:]
                for _ in range(reps):
                    if not cursor or len(out) + len(cursor) > MAX_BULK_VARBINDS:
                        break
                    row = [following(oid) for oid in cursor]
                    out += row
                    cursor = [oid for oid, _ in row]
            else:
                pmod.apiPDU.set_error_status(rsp_pdu, 5)  # genErr: SET and the rest are not served
            pmod.apiPDU.set_varbinds(rsp_pdu, out)
            dispatcher.send_message(encoder.encode(response), domain, address)
        return whole

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> ScriptedSnmpAgent:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._dispatcher = AsyncioDispatcher(loop=self._loop)
            self._dispatcher.register_recv_callback(self._answer)
            transport = udp.UdpAsyncioTransport(loop=self._loop).open_server_mode(sock=sock)
            self._dispatcher.register_transport(udp.DOMAIN_NAME, transport)
            self._dispatcher.job_started(1)
            self._loop.call_soon(ready.set)
            self._loop.run_forever()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

        self._thread = threading.Thread(target=serve, name="scripted-snmp-agent", daemon=True)
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("the scripted SNMP agent did not start")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        def shutdown() -> None:
            if self._dispatcher is not None:
                self._dispatcher.close_dispatcher()
            loop.stop()

        loop.call_soon_threadsafe(shutdown)
        thread.join(timeout=5)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> ScriptedSnmpAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
