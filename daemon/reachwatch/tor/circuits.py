"""Streams through a chosen bridge: a 3-hop circuit whose first hop is that bridge, and a SOCKS stream
attached to it. What the bridge data stage needs of the one supervised tor.

tor picks its own paths, and with many bridges configured at once it would spread streams over them as
it likes; a per-bridge data stage must pin the first hop. So, with ``__LeaveStreamsUnattached`` set for
the duration of a ``StreamAttacher``:

1. ``choose_path``: the bridge, then a middle and an exit from tor's consensus (random among Running and
   Valid relays; the exit among those whose policy summary accepts the canary's port, or any Exit relay
   when none says so: a private test network's summaries cover no public address);
2. ``build_circuit`` (``EXTENDCIRCUIT``, awaiting ``BUILT``);
3. ``StreamAttacher.open``: a SOCKS5 connection to tor's SocksPort; tor announces the stream (``STREAM
   NEW`` with our source port) and waits for the controller, and we ``ATTACHSTREAM`` it to that circuit.

Failures are classified at stage ``tunnel``: a circuit that could not be extended through the bridge is
``tor_bridge_failed`` (tor's reason kept as ``circuit_reason``), one that took too long
``generic_timeout_error``; SOCKS reply codes as for any SOCKS5 proxy (``net/socks.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import stem
from stem.control import EventType
from stem.response.events import StatusEvent, StreamEvent

from reachwatch.failures import Failure, Stage
from reachwatch.net.dial import connect_tcp
from reachwatch.net.errors import NetFailure
from reachwatch.net.socks import socks5_connect, socks5_handshake
from reachwatch.tor.supervisor import TorProcess

_REASON_MAX = 32


@dataclass(frozen=True)
class Relay:
    fingerprint: str
    exit_flag: bool
    exit_to_port: bool  # its exit policy summary accepts the port asked for


async def socks_address(tor: TorProcess) -> tuple[str, int]:
    """Where tor's SocksPort listens (the supervisor starts tor with ``SocksPort auto``)."""
    listeners = await tor.call(tor.controller.get_info, "net/listeners/socks")
    first = listeners.split()[0].strip('"')
    host, _, port = first.rpartition(":")
    return host.strip("[]"), int(port)


async def wait_for_dir_info(tor: TorProcess, wait: float) -> bool:
    """Whether tor has enough directory information to build circuits within ``wait`` seconds (the
    consensus and enough microdescriptors, fetched through the batch's bridges)."""
    with tor.events(EventType.STATUS_CLIENT) as queue:  # subscribed first: no event can slip between
        if await tor.call(tor.controller.get_info, "status/enough-dir-info") == "1":
            return True
        try:
            async with asyncio.timeout(wait):
                while True:
                    event = await queue.get()
                    if isinstance(event, StatusEvent) and event.action == "ENOUGH_DIR_INFO":
                        return True
        except TimeoutError:
            return False


async def relays(tor: TorProcess, port: int) -> list[Relay]:
    """Running, Valid relays from tor's consensus, with whether each would exit to ``port``."""

    def read() -> list[Relay]:
        found: list[Relay] = []
        for entry in tor.controller.get_network_statuses():
            if not {"Running", "Valid"} <= set(entry.flags):
                continue
            exit_flag, exits = "Exit" in entry.flags, False
            if exit_flag:
                with contextlib.suppress(stem.ControllerError, ValueError):
                    policy = tor.controller.get_microdescriptor(entry.fingerprint).exit_policy
                    exits = policy is not None and policy.can_exit_to(port=port, strict=True)
            found.append(Relay(entry.fingerprint, exit_flag, exits))
        return found

    return await tor.call(read)


def choose_path(bridge: str, candidates: Sequence[Relay]) -> list[str]:
    """``[bridge, middle, exit]``; ``ValueError`` when the consensus has too few relays."""
    others = [r for r in candidates if r.fingerprint != bridge]
    exits = [r.fingerprint for r in others if r.exit_to_port]
    exits = exits or [r.fingerprint for r in others if r.exit_flag]
    if not exits:
        raise ValueError("no exit relay in the consensus")
    exit_fp = random.choice(exits)  # path diversity, not secrecy
    middles = [r.fingerprint for r in others if r.fingerprint != exit_fp]
    if not middles:
        raise ValueError("too few relays in the consensus for a 3-hop circuit")
    return [bridge, random.choice(middles), exit_fp]


async def build_circuit(tor: TorProcess, path: Sequence[str], wait: float) -> str:
    """Extend a circuit along ``path``; its id once ``BUILT``."""
    try:
        return str(await tor.call(tor.controller.new_circuit, list(path), await_build=True, timeout=wait))
    except stem.CircuitExtensionFailed as exc:
        raise NetFailure(Failure.TOR_BRIDGE_FAILED, Stage.TUNNEL, f"circuit failed: {exc}") from exc
    except stem.Timeout as exc:
        raise NetFailure(Failure.GENERIC_TIMEOUT_ERROR, Stage.TUNNEL, "circuit not built in time") from exc


def circuit_reason(exc: NetFailure) -> str | None:
    """tor's reason for a failed circuit, from the failure's detail (``circuit failed: DESTROYED ...``)."""
    if not exc.detail.startswith("circuit failed: "):
        return None
    word = exc.detail.removeprefix("circuit failed: ").split()[:1]
    return word[0].lower()[:_REASON_MAX] if word and word[0].replace("_", "").isalnum() else None


async def open_stream(
    tor: TorProcess, host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream to ``host:port`` over a circuit tor chooses itself (a bootstrapped client's own path)."""
    socks_host, socks_port = await socks_address(tor)
    reader, writer = await connect_tcp(socks_host, socks_port)
    try:
        await socks5_handshake(reader, writer)
        await socks5_connect(reader, writer, host, port)
    except BaseException:
        writer.close()
        raise
    return reader, writer


class BatchPaths:
    """Per-bridge streams for one batch: tor's relays read once, and streams attached to circuits whose
    first hop is the bridge asked for. Made by ``BridgeTester`` while the batch's bridges are configured."""

    def __init__(self, tor: TorProcess, attacher: StreamAttacher) -> None:
        self.tor = tor
        self.attacher = attacher
        self._relays: dict[int, asyncio.Future[list[Relay]]] = {}  # per exit port, read once per batch

    async def stream(
        self, bridge_fingerprint: str, host: str, port: int, *, circuit_wait: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A stream to ``host:port`` over a fresh circuit through the bridge (stage ``tunnel``)."""
        if port not in self._relays:
            self._relays[port] = asyncio.ensure_future(relays(self.tor, port))
        candidates = await asyncio.shield(self._relays[port])
        try:
            path = choose_path(bridge_fingerprint, candidates)
        except ValueError as exc:
            raise NetFailure(Failure.TOR_BRIDGE_FAILED, Stage.TUNNEL, str(exc)) from exc
        circuit = await build_circuit(self.tor, path, circuit_wait)
        return await self.attacher.open(circuit, host, port)


class StreamAttacher:
    """While open: tor leaves new streams unattached, and ours are attached to the circuit we name."""

    def __init__(self, tor: TorProcess) -> None:
        self.tor = tor
        self._wanted: dict[int, str] = {}  # our SOCKS connection's source port -> circuit id
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def active(self) -> AsyncIterator[StreamAttacher]:
        ctl = self.tor.controller
        with self.tor.events(EventType.STREAM) as queue:
            await self.tor.call(ctl.set_options, [("__LeaveStreamsUnattached", "1")])
            self._task = asyncio.create_task(self._attach(queue))
            try:
                yield self
            finally:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                with contextlib.suppress(stem.ControllerError, stem.SocketClosed):
                    await self.tor.call(ctl.reset_conf, "__LeaveStreamsUnattached")

    async def _attach(self, queue: asyncio.Queue[object]) -> None:
        while True:
            event = await queue.get()
            if not isinstance(event, StreamEvent) or event.status != "NEW" or event.source_port is None:
                continue
            circuit = self._wanted.pop(int(event.source_port), None)
            if circuit is None:
                continue  # not ours: tor's own directory streams never wait for us
            with contextlib.suppress(stem.ControllerError):  # it fails at SOCKS; the caller sees that
                await self.tor.call(self.tor.controller.attach_stream, event.id, circuit)

    async def open(
        self, circuit: str, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A stream to ``host:port`` through ``circuit``, ready for data."""
        socks_host, socks_port = await socks_address(self.tor)
        reader, writer = await connect_tcp(socks_host, socks_port)
        try:
            self._wanted[int(writer.get_extra_info("sockname")[1])] = circuit
            await socks5_handshake(reader, writer)
            await socks5_connect(reader, writer, host, port)
        except BaseException:
            writer.close()
            raise
        return reader, writer
