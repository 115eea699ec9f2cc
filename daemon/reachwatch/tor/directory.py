"""The directory tor: a client tor reachwatch keeps bootstrapped so live relay sets follow the consensus.

Live relay sets (``tor.relay_sets[].live``) take their members from here: ``consensus()`` is the
microdescriptor consensus this tor holds (``GETINFO dir/status-vote/current/consensus-microdesc``: the
whole signed document, so its ``valid-after`` says how fresh it is), and ``fetch(url)`` is an HTTP(S) GET
through its SocksPort (the Onionoo details document, with country and AS). Nothing about the relays is
asked of anyone but the Tor network itself, through Tor.

Why a tor of its own, not the bridge tester's (``tor/bridges.py``): the tester is recycled after every
batch so no bridge descriptor or guard state leaks from one batch into the next, and it idles with
``DisableNetwork``; a consensus needs a tor that stays up and refreshes it hourly, as any client does.
When the public relays are blocked here it bootstraps through ``tor.relay_list.bridges`` (its guard is
then a bridge: the one thing that stays private). Its DataDirectory can persist (``relay_list.data_dir``)
so a daemon restart starts from the cached consensus.

Supervised like the tester (``TorSupervisor``): started on first use, restarted with backoff when it
dies. A call made while it is down or not yet bootstrapped raises ``DirectoryUnavailable``; the caller
(``relaywatch``) keeps its last good list.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import stem

from reachwatch.config.bridgeline import parse_bridge_line
from reachwatch.config.types import Url
from reachwatch.failures import scrub
from reachwatch.net.dial import connect_tcp
from reachwatch.net.errors import NetFailure
from reachwatch.net.http import request
from reachwatch.net.socks import socks5_connect, socks5_handshake
from reachwatch.net.tls import client_context, discard, tls_handshake
from reachwatch.tor.supervisor import TorBinaries, TorProcess, TorSupervisor, TorUnavailable

if TYPE_CHECKING:  # config.schema imports the probe registry, which imports the Tor probes
    from reachwatch.config.schema import TorConfig

CONSENSUS_KEY = "dir/status-vote/current/consensus-microdesc"
MAX_DOCUMENT = 64 * 1024 * 1024


class DirectoryUnavailable(Exception):
    """The directory tor cannot answer now (not running, not bootstrapped, or the fetch failed)."""


class DirectoryTor:
    """One supervised client tor that holds a current consensus."""

    def __init__(
        self,
        binaries: TorBinaries,
        options: Mapping[str, str | Sequence[str]] | None = None,
        *,
        bridges: Sequence[str] = (),
        data_dir: Path | None = None,
        bootstrap_timeout: float = 120.0,
    ) -> None:
        full: dict[str, str | Sequence[str]] = {**(options or {}), "DisableNetwork": "0"}
        if bridges:
            lines = [parse_bridge_line(line) for line in bridges]
            full["UseBridges"] = "1"
            full["Bridge"] = [line.torrc_value() for line in lines]
            transports = sorted({line.transport for line in lines if line.transport})
            if transports:
                full["ClientTransportPlugin"] = binaries.plugin_lines(transports)
        self.supervisor = TorSupervisor(binaries, full, data_dir=data_dir)
        self.bootstrap_timeout = bootstrap_timeout

    @classmethod
    def from_config(cls, config: TorConfig) -> DirectoryTor | None:
        """The directory tor ``tor:`` asks for: ``None`` unless a relay set is live."""
        if not config.live_relay_sets():
            return None
        relay_list = config.relay_list
        return cls(
            TorBinaries(tor=config.binary, transports=dict(config.transports)),
            dict(config.torrc),
            bridges=relay_list.bridges,
            data_dir=Path(relay_list.data_dir) if relay_list.data_dir else None,
            bootstrap_timeout=config.bootstrap_timeout,
        )

    @staticmethod
    def settings(config: TorConfig) -> tuple[object, ...]:
        """What ``from_config`` depends on: a reload that changes none of it keeps the running tor."""
        return (config.binary, dict(config.transports), dict(config.torrc), config.relay_list,
                config.bootstrap_timeout, bool(config.live_relay_sets()))  # fmt: skip

    async def _ready(self) -> TorProcess:
        """The running tor once it has enough directory information; ``DirectoryUnavailable`` if it has
        none within ``bootstrap_timeout``."""
        try:
            process = await self.supervisor.get()
        except TorUnavailable as exc:
            raise DirectoryUnavailable(str(exc)) from exc
        deadline = time.monotonic() + self.bootstrap_timeout
        while True:
            try:
                enough = await process.call(process.controller.get_info, "status/enough-dir-info")
            except (stem.ControllerError, stem.SocketError, OSError) as exc:
                raise DirectoryUnavailable(f"directory tor control: {scrub(str(exc))}") from exc
            if enough.strip() == "1":
                return process
            if time.monotonic() > deadline or not process.alive:
                raise DirectoryUnavailable("directory tor has no consensus yet (still bootstrapping)")
            await asyncio.sleep(1.0)

    async def consensus(self) -> bytes:
        """The microdescriptor consensus the directory tor holds now (the whole signed document)."""
        process = await self._ready()
        try:
            text: str = await process.call(process.controller.get_info, CONSENSUS_KEY)
        except (stem.ControllerError, stem.SocketError, OSError) as exc:
            raise DirectoryUnavailable(f"directory tor control: {scrub(str(exc))}") from exc
        return text.encode()

    async def fetch(self, url: str, timeout: float = 300.0) -> bytes:  # noqa: ASYNC109 (one bounded GET)
        """``GET url`` through the directory tor's SocksPort; the body (at most ``MAX_DOCUMENT`` bytes)."""
        process = await self._ready()
        try:
            listeners = await process.call(process.controller.get_listeners, stem.control.Listener.SOCKS)
        except (stem.ControllerError, stem.SocketError, OSError) as exc:
            raise DirectoryUnavailable(f"directory tor control: {scrub(str(exc))}") from exc
        if not listeners:
            raise DirectoryUnavailable("directory tor has no SocksPort")
        socks_host, socks_port = listeners[0]
        target = Url.parse(url)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await connect_tcp(socks_host, socks_port)
                try:
                    await socks5_handshake(reader, writer)
                    await socks5_connect(reader, writer, target.host, target.port)
                    if target.scheme == "https":
                        session = await tls_handshake(reader, writer, target.host, client_context())
                        reader, writer = session.reader, session.writer
                    response = await request(reader, writer, "GET", target, max_bytes=MAX_DOCUMENT)
                finally:
                    discard(writer)
        except TimeoutError:
            raise DirectoryUnavailable(f"fetching {target.host} through tor timed out") from None
        except NetFailure as exc:
            raise DirectoryUnavailable(f"fetching {target.host} through tor: {exc.failure.value}") from None
        if response.status != 200 or not response.complete:
            state = f"HTTP {response.status}" if response.status != 200 else "an incomplete body"
            raise DirectoryUnavailable(f"fetching {target.host} through tor: {state}")
        body: bytes = response.body
        return body

    async def close(self) -> None:
        await self.supervisor.close()
