"""A full tor bootstrap with a fresh DataDirectory, and where it stalled if it did not reach 100%.

Each attempt starts its own tor with an empty DataDirectory, so no cached consensus, descriptors or guard
state can skip phases and hide blocking. tor starts with ``DisableNetwork 1``; we subscribe to
``STATUS_CLIENT`` first and only then enable the network, so every ``BOOTSTRAP`` event is seen.

From the events we keep the furthest phase reached (``PROGRESS``, ``TAG``, ``SUMMARY``) and the last
problem tor reported (``WARNING``, ``REASON`` from ``STATUS_CLIENT WARN BOOTSTRAP``). The phase says what
did not complete (see ``STALL_STAGE``): stuck at ``conn`` (5) means the TCP handshake to the bridge never
finished; ``conn_done_pt`` (2) means the pluggable transport could not reach its bridge; ``handshake`` (14)
means the Tor link handshake, and so on. ``HOSTADDR``/``HOSTID`` are never kept (they name the bridge).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from stem.control import EventType
from stem.response.events import StatusEvent

from reachwatch.config.bridgeline import BridgeLine
from reachwatch.failures import Stage, scrub
from reachwatch.tor.supervisor import TorBinaries, TorProcess

# free text from tor (WARNING, SUMMARY) is cut to this length before it becomes a fact
_TEXT_MAX = 120


@dataclass
class BootstrapReport:
    """The outcome of one bootstrap attempt."""

    done: bool
    progress: int
    tag: str
    summary: str
    seconds: float
    warning: str | None = None
    reason: str | None = None  # control-spec ORCONN reason (bounded), lower case
    warnings: int = 0
    data_error: BaseException | None = None  # how the ``then`` step failed, if it did


def stall_stage(progress: int) -> Stage:
    """Which of our stages a bootstrap stuck at ``progress`` failed in (tor control-spec section 5.5)."""
    if progress < 10:  # starting, conn_pt, conn_done_pt (PT -> bridge), conn: the TCP connection
        return Stage.CONNECT
    if progress < 14:  # conn_done: TCP done, TLS handshake running
        return Stage.TLS_HANDSHAKE
    if progress < 15:  # handshake: VERSIONS/CERTS/NETINFO
        return Stage.PROTOCOL_HANDSHAKE
    if progress < 75:  # one-hop directory fetches: consensus, keys, descriptors
        return Stage.TRANSFER
    return Stage.TUNNEL  # enough_dirinfo .. circuit_create: building the first circuit


async def run_bootstrap(
    binaries: TorBinaries,
    bridges: Sequence[BridgeLine],
    *,
    wait: float,
    extra_options: Mapping[str, str | Sequence[str]] | None = None,
    redact: Sequence[str] = (),
    then: Callable[[TorProcess], Awaitable[None]] | None = None,
) -> BootstrapReport:
    """Bootstrap a fresh tor (through ``bridges`` if given) for at most ``wait`` seconds.

    ``redact``: values (bridge addresses, fingerprints) removed from tor's free-text messages.
    ``then``: run with the bootstrapped tor before it is closed (the data stage); its error, if any, is
    kept in ``data_error``. Raises ``TorUnavailable`` when tor or a transport plugin is missing.
    """
    options: dict[str, str | Sequence[str]] = {"DisableNetwork": "1"}
    transports = sorted({b.transport for b in bridges if b.transport})
    if bridges:
        options["UseBridges"] = "1"
        options["Bridge"] = [b.torrc_value() for b in bridges]
    if transports:
        options["ClientTransportPlugin"] = binaries.plugin_lines(transports)
    options.update(extra_options or {})
    report = BootstrapReport(done=False, progress=0, tag="starting", summary="Starting", seconds=0.0)
    tor = await TorProcess.launch(binaries, options, data_dir=None)
    try:
        with tor.events(EventType.STATUS_CLIENT) as queue:
            t0 = time.monotonic()
            await tor.call(tor.controller.set_options, [("DisableNetwork", "0")])
            try:
                async with asyncio.timeout(wait):
                    while not report.done:
                        event = await queue.get()
                        if isinstance(event, StatusEvent) and event.action == "BOOTSTRAP":
                            _apply(report, event, redact)
            except TimeoutError:
                pass
            report.seconds = time.monotonic() - t0
        if report.done and then is not None:
            try:
                await then(tor)
            except Exception as exc:  # a data stage failure is a result, reported by the probe
                report.data_error = exc
    finally:
        await tor.close()
    return report


def _apply(report: BootstrapReport, event: StatusEvent, redact: Sequence[str]) -> None:
    args = event.keyword_args
    try:
        progress = int(args.get("PROGRESS", "0"))
    except ValueError:
        return
    if event.runlevel == "WARN":
        report.warnings += 1
        report.warning = _clean(args.get("WARNING", ""), redact) or None
        reason = args.get("REASON", "")
        report.reason = reason.lower()[:32] if reason.isalnum() or "_" in reason else None
    if progress >= report.progress:
        report.progress = progress
        report.tag = args.get("TAG", report.tag)[:32]
        report.summary = _clean(args.get("SUMMARY", ""), redact)
    if progress >= 100:
        report.done = True


def _clean(text: str, redact: Sequence[str]) -> str:
    for value in sorted(redact, key=len, reverse=True):
        if value:
            text = text.replace(value, "[bridge]")
    return scrub(text)[:_TEXT_MAX]
