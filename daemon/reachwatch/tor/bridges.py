"""Testing many bridges with ONE tor, the bridgestrap way.

A batch is one ``SETCONF UseBridges=1 Bridge=... Bridge=... ClientTransportPlugin=...``: tor connects to
every configured bridge at once and fetches each bridge's descriptor *through that bridge*. We listen to
``ORCONN`` and ``NEWDESC`` events:

- a bridge **works** when a ``NEWDESC`` names its fingerprint: TCP, the transport, TLS, the link handshake
  (identity included) and a one-hop directory fetch all succeeded;
- it **fails** with the reason of its ``ORCONN ... FAILED``/``CLOSED`` event, mapped to our vocabulary
  (``CONNECTREFUSED`` -> ``connection_refused``, ``IDENTITY`` -> ``tor_identity_mismatch`` ...), or with
  ``generic_timeout_error`` when nothing conclusive happened before the batch deadline.

Between batches the tester's tor has ``DisableNetwork 1`` and no bridges, so an idle tester sends nothing.
tor keeps a bridge descriptor it has fetched once, and a later batch would see the link come up but no
``NEWDESC``; so when a batch repeats a bridge the current tor has already tested, the tester starts a
fresh tor (it launches in well under a second with the network disabled) instead of guessing.

``BridgeTester`` turns concurrent per-target probe calls into batches: requests arriving within
``gather_window`` are tested together, at most ``batch_size`` at a time, one batch at a time.

The data stage (a descriptor is what censors let through; usable means data): a request may bring a
``DataHook``. Once the descriptors are in, and while the batch's bridges are still configured, tor needs
enough directory information to build circuits (the consensus and microdescriptors, fetched through the
batch's bridges); then every working bridge's hook runs, concurrently, with ``BatchPaths``: streams over
circuits whose first hop is that bridge (``tor/circuits.py``). The hook (the probe's) runs its data stage
on such a stream; its error, if any, comes back in the outcome (``data_error``). A batch whose bridges
brought no directory information within ``batch_timeout`` fails every hook at stage ``transfer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog
from stem.control import EventType
from stem.response.events import NewDescEvent, ORConnEvent

from reachwatch.config.bridgeline import BridgeLine
from reachwatch.failures import Failure, Stage
from reachwatch.net.errors import NetFailure
from reachwatch.tor.circuits import BatchPaths, StreamAttacher, wait_for_dir_info
from reachwatch.tor.supervisor import TorProcess, TorSupervisor, TorUnavailable

log = structlog.get_logger(__name__)

# control-spec ORCONN REASON -> (our failure, the stage it points at)
ORCONN_REASONS: dict[str, tuple[Failure, Stage]] = {
    "CONNECTREFUSED": (Failure.CONNECTION_REFUSED, Stage.CONNECT),
    "CONNECTRESET": (Failure.CONNECTION_RESET, Stage.PROTOCOL_HANDSHAKE),
    "TIMEOUT": (Failure.GENERIC_TIMEOUT_ERROR, Stage.CONNECT),
    "NOROUTE": (Failure.HOST_UNREACHABLE, Stage.CONNECT),
    "IDENTITY": (Failure.TOR_IDENTITY_MISMATCH, Stage.PROTOCOL_HANDSHAKE),
    "IOERROR": (Failure.CONNECTION_RESET, Stage.PROTOCOL_HANDSHAKE),
    "PT_MISSING": (Failure.TOR_PT_MISSING, Stage.CONNECT),
    "RESOURCELIMIT": (Failure.TOR_BRIDGE_FAILED, Stage.PROTOCOL_HANDSHAKE),
    "MISC": (Failure.TOR_BRIDGE_FAILED, Stage.PROTOCOL_HANDSHAKE),
    "DONE": (Failure.TOR_BRIDGE_FAILED, Stage.PROTOCOL_HANDSHAKE),
}


# a working bridge's data stage, run inside the batch: (the batch's paths, the bridge's fingerprint)
DataHook = Callable[[BatchPaths, str], Awaitable[None]]


@dataclass
class BridgeOutcome:
    """What one batch learned about one bridge."""

    working: bool
    failure: Failure | None = None
    stage: Stage | None = None
    orconn_reason: str | None = None  # control-spec reason, a bounded vocabulary
    connected: bool = False  # the link handshake completed at least once
    seconds: float = 0.0
    fingerprint: str | None = None  # the identity tor fetched the descriptor of (learnt for lines without)
    data_ran: bool = False  # a data hook ran for this bridge
    data_error: BaseException | None = None  # how that hook failed, if it did


class _Pending:
    def __init__(self, bridge: BridgeLine, t0: float) -> None:
        self.bridge = bridge
        self.t0 = t0
        self.outcome: BridgeOutcome | None = None
        self.connected = False


async def test_batch(
    tor: TorProcess,
    bridges: Sequence[BridgeLine],
    plugin_lines: Sequence[str],
    wait: float,
    data: Mapping[BridgeLine, DataHook] | None = None,
) -> list[BridgeOutcome]:
    """Test ``bridges`` together, for at most ``wait`` seconds; one outcome per bridge, in order. Then the
    ``data`` hooks of the working ones (directory information awaited for at most ``wait`` too)."""
    t0 = time.monotonic()
    pending = [_Pending(b, t0) for b in bridges]
    by_fp = {p.bridge.fingerprint: p for p in pending if p.bridge.fingerprint}
    by_addr = {p.bridge.address: p for p in pending}
    options: list[tuple[str, str]] = [("UseBridges", "1")]
    options += [("ClientTransportPlugin", line) for line in plugin_lines]
    options += [("Bridge", p.bridge.torrc_value()) for p in pending]
    options.append(("DisableNetwork", "0"))
    ctl = tor.controller
    with tor.events(EventType.ORCONN, EventType.NEWDESC) as queue:
        await tor.call(ctl.set_options, options)
        # a tor idle for a day goes dormant and ignores new bridges until woken (bridgestrap#12)
        await tor.call(ctl.signal, "ACTIVE")
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    while any(p.outcome is None for p in pending):
                        _apply(await queue.get(), by_fp, by_addr)
            runs = [
                (p.outcome, data[p.bridge])
                for p in pending
                if data and p.bridge in data and p.outcome is not None and p.outcome.working
            ]
            if runs:
                await _data_phase(tor, runs, wait)
        finally:
            await tor.call(ctl.set_options, [("DisableNetwork", "1")])
            await tor.call(ctl.reset_conf, "Bridge", "UseBridges", "ClientTransportPlugin")
    outcomes = []
    for p in pending:
        outcome = p.outcome or BridgeOutcome(
            working=False,
            failure=Failure.GENERIC_TIMEOUT_ERROR,
            stage=Stage.PROTOCOL_HANDSHAKE if p.connected else Stage.CONNECT,
            seconds=time.monotonic() - t0,
        )
        outcome.connected = outcome.connected or p.connected
        outcomes.append(outcome)
    return outcomes


async def _data_phase(tor: TorProcess, runs: list[tuple[BridgeOutcome, DataHook]], wait: float) -> None:
    """Run every working bridge's data hook with circuits through that bridge."""
    for outcome, _ in runs:
        outcome.data_ran = True
    if not await wait_for_dir_info(tor, wait):
        for outcome, _ in runs:
            outcome.data_error = NetFailure(
                Failure.GENERIC_TIMEOUT_ERROR, Stage.TRANSFER, "no directory information through the bridges"
            )
        return
    async with StreamAttacher(tor).active() as attacher:
        paths = BatchPaths(tor, attacher)
        results = await asyncio.gather(
            *(hook(paths, outcome.fingerprint or "") for outcome, hook in runs), return_exceptions=True
        )
    for (outcome, _), result in zip(runs, results, strict=True):
        if isinstance(result, BaseException):
            outcome.data_error = result


def _apply(event: object, by_fp: dict[str, _Pending], by_addr: dict[str, _Pending]) -> None:
    now = time.monotonic()
    if isinstance(event, NewDescEvent):
        for fingerprint, _nickname in event.relays:
            p = by_fp.get(fingerprint.upper())
            if p is not None and (p.outcome is None or not p.outcome.working):
                p.outcome = BridgeOutcome(
                    working=True, connected=True, seconds=now - p.t0, fingerprint=fingerprint.upper()
                )
        return
    if not isinstance(event, ORConnEvent):
        return
    fp = (event.endpoint_fingerprint or "").upper()
    p = by_fp.get(fp) if fp else None
    if p is None and event.endpoint_address:
        p = by_addr.get(_addr(event.endpoint_address, event.endpoint_port))
    # tor names a connection by address when it launches it and by identity once the handshake is done;
    # the connection ID ties the two together (needed for lines without a fingerprint)
    conn_id = f"id:{event.id}" if event.id else None
    if p is None and conn_id:
        p = by_addr.get(conn_id)
    elif p is not None and conn_id:
        by_addr.setdefault(conn_id, p)
    if p is None or p.outcome is not None:
        return
    if fp and p.bridge.fingerprint is None:
        by_fp.setdefault(fp, p)  # a line without fingerprint: learn it from the link, match NEWDESC by it
    if event.status == "CONNECTED":
        p.connected = True
    elif event.status == "FAILED" or (event.status == "CLOSED" and not p.connected):
        reason = (event.reason or "MISC").upper()
        failure, stage = ORCONN_REASONS.get(reason, (Failure.TOR_BRIDGE_FAILED, Stage.PROTOCOL_HANDSHAKE))
        p.outcome = BridgeOutcome(
            working=False, failure=failure, stage=stage, orconn_reason=reason.lower(), seconds=now - p.t0
        )


def _addr(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}"


class BridgeTester:
    """Batches concurrent bridge tests onto the supervisor's single tor."""

    def __init__(
        self,
        supervisor: TorSupervisor,
        *,
        batch_size: int = 50,
        batch_timeout: float = 60.0,
        gather_window: float = 1.0,
    ) -> None:
        self.supervisor = supervisor
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self.gather_window = gather_window
        self.batches = 0
        self._queue: list[tuple[BridgeLine, DataHook | None, asyncio.Future[BridgeOutcome]]] = []
        # bridges the current tor process has already fetched descriptors of (or tried to)
        self._tested: set[BridgeLine] = set()
        self._tested_by: TorProcess | None = None
        self._runner: asyncio.Task[None] | None = None

    async def test(self, bridge: BridgeLine, data: DataHook | None = None) -> BridgeOutcome:
        """Test one bridge as part of the next batch (``data``: its data stage, run if it works). Raises
        ``TorUnavailable`` if tor cannot run."""
        future: asyncio.Future[BridgeOutcome] = asyncio.get_running_loop().create_future()
        self._queue.append((bridge, data, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await future

    async def close(self) -> None:
        """Stop batching before the supervisor stops tor: a batch cut by shutdown is not a tor failure.

        Callers still waiting get ``TorUnavailable`` (the scheduler has already cancelled or drained them).
        """
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        queued, self._queue = self._queue, []
        for _, _, future in queued:
            if not future.done():
                future.set_exception(TorUnavailable(Failure.TOR_UNAVAILABLE, "reachwatch is stopping"))

    async def _run(self) -> None:
        while self._queue:
            await asyncio.sleep(self.gather_window)
            batch, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size :]
            batch = [(b, d, f) for b, d, f in batch if not f.done()]  # callers whose deadline already passed
            if batch:
                await self._run_batch(batch)

    async def _run_batch(
        self, batch: list[tuple[BridgeLine, DataHook | None, asyncio.Future[BridgeOutcome]]]
    ) -> None:
        try:
            tor = await self.supervisor.get()
            if tor is self._tested_by and any(b in self._tested for b, _, _ in batch):
                await self.supervisor.recycle()
                tor = await self.supervisor.get()
            if tor is not self._tested_by:
                self._tested, self._tested_by = set(), tor
        except TorUnavailable as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(TorUnavailable(exc.failure, str(exc), exc.hint))
            return
        runnable: list[tuple[BridgeLine, asyncio.Future[BridgeOutcome]]] = []
        hooks: dict[BridgeLine, DataHook] = {}
        transports: set[str] = set()
        for bridge, hook, future in batch:
            if hook is not None:
                hooks.setdefault(bridge, hook)  # one data stage per bridge, however many targets name it
            if bridge.transport is None:
                runnable.append((bridge, future))
                continue
            try:
                self.supervisor.binaries.plugin_lines([bridge.transport])
            except TorUnavailable as exc:
                future.set_exception(exc)
                continue
            transports.add(bridge.transport)
            runnable.append((bridge, future))
        if not runnable:
            return
        unique = list(dict.fromkeys(b for b, _ in runnable))
        self._tested.update(unique)
        try:
            outcomes = await test_batch(
                tor,
                unique,
                self.supervisor.binaries.plugin_lines(sorted(transports)),
                self.batch_timeout,
                hooks,
            )
        except asyncio.CancelledError:  # close(): reachwatch is stopping
            for _, future in runnable:
                if not future.done():
                    future.set_exception(TorUnavailable(Failure.TOR_UNAVAILABLE, "reachwatch is stopping"))
            raise
        except Exception as exc:  # tor died mid-batch: the next batch restarts it
            log.warning("bridge_batch_failed", error=type(exc).__name__)
            for _, future in runnable:
                if not future.done():
                    future.set_exception(
                        TorUnavailable(Failure.TOR_UNAVAILABLE, "tor failed during the batch")
                    )
            return
        self.batches += 1
        result = dict(zip(unique, outcomes, strict=True))
        for bridge, future in runnable:
            if not future.done():
                future.set_result(result[bridge])
