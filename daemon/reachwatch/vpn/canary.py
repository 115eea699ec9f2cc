"""The canary: proof that a tunnel carries data, and the tunnel-usability stage.

A proxy or VPN that completes its handshake may still be useless: Russia cut OpenVPN and WireGuard in 2023
*after* the handshake, once a flow passed a few kilobytes. So every probe whose protocol carries data
ends with two steps through the established stream, against a canary the operator runs outside the
country (an echo service: ``socat TCP-LISTEN:7007,fork EXEC:cat`` is enough):

1. ``verify_canary`` (stage ``tunnel``): send one line with a fresh random nonce, expect it echoed
   byte for byte. Anything else is ``canary_mismatch`` (a transparent proxy, a block page, a captive
   portal answered instead of the canary).
2. ``push_canary`` (stage ``transfer``): send ``push_bytes`` (64-256 KB is the useful range) of random
   data while reading the echo back; record ``throughput_bps`` (bytes per second, round trip) and
   ``transfer_bytes``. A stall longer than ``stall_timeout`` or an early close is ``transfer_incomplete``
   with the byte count reached: the cut-after-N-bytes signature.

The stream is anything with ``send``/``recv``/``close`` (``Stream``): a plain TCP stream after a SOCKS5 or
HTTP CONNECT handshake, or the decrypting Shadowsocks stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.failures import Failure, Stage
from reachwatch.formats.errors import StreamCorrupt
from reachwatch.model import FactValue
from reachwatch.net.dial import close_quietly
from reachwatch.net.errors import NetFailure, classified

CHUNK = 16 * 1024
NONCE_PREFIX = b"RWCANARY "


class Stream(Protocol):
    """A byte stream through a tunnel. ``recv`` returns ``b""`` at end of stream."""

    async def send(self, data: bytes) -> None: ...

    async def recv(self, max_bytes: int) -> bytes: ...

    async def close(self) -> None: ...


class Recorder(Protocol):
    """What the push needs of the probe's attempt (``probes.base.ProbeContext`` is one): a timed stage and
    facts. Declared here so this runtime layer never imports the probes above it."""

    def stage(self, stage: Stage) -> AbstractContextManager[None]: ...

    def fact(self, key: str, value: FactValue) -> None: ...


class PlainStream:
    """A TCP connection used as is (after a proxy handshake).

    ``pending`` holds tunnel bytes the handshake already took off the socket (an HTTP proxy's 200 and
    the destination's first bytes can share one read); ``recv`` hands them out first.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending = b""

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, max_bytes: int) -> bytes:
        if self.pending:
            out, self.pending = self.pending[:max_bytes], self.pending[max_bytes:]
            return out
        return await self.reader.read(max_bytes)

    async def close(self) -> None:
        await close_quietly(self.writer)


@contextmanager
def at_stage(stage: Stage) -> Iterator[None]:
    """Classify stream errors (OS errors, EOF, broken framing) at ``stage``."""
    try:
        with classified(stage):
            yield
    except StreamCorrupt as exc:
        raise NetFailure(Failure.PROTOCOL_ERROR, stage, str(exc)) from exc


async def recv_exactly(stream: Stream, n: int, stage: Stage) -> bytes:
    """Exactly ``n`` bytes; ``eof_error`` at ``stage`` if the stream ends first."""
    buf = bytearray()
    with at_stage(stage):
        while len(buf) < n:
            data = await stream.recv(n - len(buf))
            if not data:
                raise NetFailure(Failure.EOF_ERROR, stage, f"stream ended after {len(buf)} of {n} bytes")
            buf += data
    return bytes(buf)


def canary_line() -> bytes:
    """A fresh nonce line: an echo of an old line (a replaying middlebox) cannot pass for the canary."""
    return NONCE_PREFIX + secrets.token_hex(16).encode() + b"\n"


async def verify_canary(stream: Stream, *, first_sent: bytes | None = None) -> None:
    """Send a nonce line (unless the caller already sent ``first_sent``) and expect it echoed."""
    line = first_sent if first_sent is not None else canary_line()
    if first_sent is None:
        with at_stage(Stage.TUNNEL):
            await stream.send(line)
    echoed = await recv_exactly(stream, len(line), Stage.TUNNEL)
    if echoed != line:
        raise NetFailure(Failure.CANARY_MISMATCH, Stage.TUNNEL, "canary answered something else")


async def push_canary(stream: Stream, config: CanaryConfig, ctx: Recorder) -> None:
    """Push ``config.push_bytes`` through the echo canary; facts ``throughput_bps``, ``transfer_bytes``."""
    total = config.push_bytes
    if total == 0:
        return
    payload = os.urandom(total)
    received = 0
    start = time.monotonic()

    async def sender() -> None:
        for offset in range(0, total, CHUNK):
            await stream.send(payload[offset : offset + CHUNK])

    async def receiver() -> None:
        nonlocal received
        while received < total:
            async with asyncio.timeout(config.stall_timeout):
                data = await stream.recv(min(CHUNK * 4, total - received))
            if not data:
                raise EOFError
            if data != payload[received : received + len(data)]:
                raise NetFailure(Failure.CANARY_MISMATCH, Stage.TRANSFER, "echo differs from what was sent")
            received += len(data)

    with ctx.stage(Stage.TRANSFER):
        send_task = asyncio.ensure_future(sender())
        try:
            with at_stage(Stage.TRANSFER):
                await receiver()
            with at_stage(Stage.TRANSFER):
                await send_task
        except NetFailure as exc:
            ctx.fact("transfer_bytes", received)
            ctx.fact("transfer_target_bytes", total)
            if exc.failure in (Failure.CANARY_MISMATCH, Failure.PROTOCOL_ERROR):
                raise
            # a stall, an EOF or a reset part-way through: the cut-after-N-bytes signature
            raise NetFailure(Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER, exc.detail) from exc
        finally:
            if not send_task.done():
                send_task.cancel()
            # its error, if any, is the one already being reported; retrieving it keeps asyncio from
            # logging "exception was never retrieved"
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await send_task
    elapsed = max(time.monotonic() - start, 1e-6)
    ctx.fact("transfer_bytes", received)
    ctx.fact("throughput_bps", round(received / elapsed, 1))
