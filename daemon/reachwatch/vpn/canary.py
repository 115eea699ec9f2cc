"""The canary: proof that a tunnel carries data, through an echo service the operator runs abroad.

A proxy or VPN that completes its handshake may still be useless: censors cut flows *after* the handshake,
once they carried a few kilobytes. So every probe whose tunnel reaches the canary (an echo service:
``socat TCP-LISTEN:7007,fork EXEC:cat`` is enough) ends with two steps through the established stream:

1. ``verify_canary`` (stage ``tunnel``): send one line with a fresh random nonce, expect it echoed
   byte for byte. Anything else is ``canary_mismatch`` (a transparent proxy, a block page, a captive
   portal answered instead of the canary).
2. the data stage (stage ``transfer``, ``vpn.datastage``) with ``StreamEcho`` as its path: the volume
   pipelined through the echo, then one small echo a second for the flow's minimum lifetime.

The stream is anything with ``send``/``recv``/``close`` (``Stream``): a plain TCP stream after a SOCKS5 or
HTTP CONNECT handshake, the decrypting Shadowsocks stream, a socket made inside an OpenVPN tunnel's
namespace, or a Tor stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from reachwatch.failures import Failure, Stage
from reachwatch.formats.errors import StreamCorrupt
from reachwatch.net.dial import close_quietly
from reachwatch.net.errors import NetFailure, classified
from reachwatch.vpn.datastage import Meter, random_payload

CHUNK = 16 * 1024
NONCE_PREFIX = b"RWCANARY "


class Stream(Protocol):
    """A byte stream through a tunnel. ``recv`` returns ``b""`` at end of stream."""

    async def send(self, data: bytes) -> None: ...

    async def recv(self, max_bytes: int) -> bytes: ...

    async def close(self) -> None: ...


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


class StreamEcho:
    """``vpn.datastage.EchoPath`` over a byte stream to the echo canary: what goes out must come back,
    byte for byte and in order."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    async def pump(self, volume: int, meter: Meter, stall: float) -> None:
        payload = random_payload(volume)

        async def sender() -> None:
            for offset in range(0, volume, CHUNK):
                await self.stream.send(payload[offset : offset + CHUNK])

        send_task = asyncio.ensure_future(sender())
        try:
            with at_stage(Stage.TRANSFER):
                await self._expect(payload, meter, stall)
                await send_task
        finally:
            if not send_task.done():
                send_task.cancel()
            # its error, if any, is the one already being reported; retrieving it keeps asyncio from
            # logging "exception was never retrieved"
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await send_task

    async def echo(self, size: int, meter: Meter, stall: float) -> None:
        payload = random_payload(size)
        with at_stage(Stage.TRANSFER):
            await self.stream.send(payload)
            await self._expect(payload, meter, stall)

    async def _expect(self, payload: bytes, meter: Meter, stall: float) -> None:
        received = 0
        while received < len(payload):
            async with asyncio.timeout(stall):
                data = await self.stream.recv(min(CHUNK * 4, len(payload) - received))
            if not data:
                raise EOFError
            if data != payload[received : received + len(data)]:
                raise NetFailure(Failure.CANARY_MISMATCH, Stage.TRANSFER, "echo differs from what was sent")
            received += len(data)
            meter.add(len(data))
