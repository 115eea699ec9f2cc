"""The canary: proof that a tunnel carries data, through an echo service the operator runs abroad.

A proxy or VPN that completes its handshake may still be useless: censors cut flows *after* the handshake,
once they carried a few kilobytes. So every probe whose tunnel reaches the canary (an echo service:
``socat TCP-LISTEN:7007,fork EXEC:cat`` is enough) ends with two steps through the established stream:

1. ``verify_canary`` (stage ``tunnel``): the greeting (``Greeting``). With an echo service
   (``mode: echo``) one line with a fresh random nonce, expected back byte for byte; with
   ``reachwatch canary`` (``mode: reachwatch``) a keyed ``ECHO`` request carrying the nonce
   (``formats.canary``), answered by the canary's keyed reply naming the port it arrived on, after which it
   echoes. Anything else is ``canary_mismatch`` (a transparent proxy, a block page, a captive portal, a
   redirect answered instead of the canary); the keyed reply proves no middlebox can pass for it.
2. the data stage (stage ``transfer``, ``vpn.datastage``) with ``StreamEcho`` as its path: the volume
   pipelined through the echo, then one small echo a second for the flow's minimum lifetime.

The stream is anything with ``send``/``recv``/``close`` (``Stream``): a plain TCP stream after a SOCKS5 or
HTTP CONNECT handshake, the decrypting Shadowsocks stream, a socket made inside an OpenVPN tunnel's
namespace, or a Tor stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.failures import Failure, Stage
from reachwatch.formats import canary as wire
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


@dataclass(frozen=True)
class Greeting:
    """How a stream to the canary opens: ``first`` goes out, ``answer_size`` bytes must come back and pass
    ``check``. ``key`` is set for ``reachwatch canary`` (the keyed ``ECHO`` request to ``port``)."""

    first: bytes
    answer_size: int
    key: bytes | None = None
    port: int = 0

    def check(self, answer: bytes, stage: Stage = Stage.TUNNEL) -> None:
        """``canary_mismatch`` at ``stage`` unless ``answer`` is the canary's."""
        if self.key is None:
            if answer != self.first:
                raise NetFailure(Failure.CANARY_MISMATCH, stage, "canary answered something else")
            return
        try:
            reply = wire.verify_reply(answer, self.key, self.first)
        except wire.FrameError as exc:
            raise NetFailure(Failure.CANARY_MISMATCH, stage, str(exc)) from None
        if reply.port != self.port:
            raise NetFailure(Failure.CANARY_MISMATCH, stage, "the canary got us on another port")


def echo_greeting() -> Greeting:
    """The greeting of a plain echo service: a fresh nonce line."""
    line = canary_line()
    return Greeting(line, len(line))


async def greeting(canary: CanaryConfig | None, base_dir: Path) -> Greeting:
    """The greeting ``canary`` expects. For ``mode: reachwatch`` the secret is read on every attempt (a
    rotated secret needs no reload), in a worker thread; an unusable one is a ``ConfigError``."""
    if canary is None or canary.mode == "echo":
        return echo_greeting()
    secret = await asyncio.to_thread(canary.canary_secret, base_dir, "canary")
    key = wire.derive_key(secret)
    nonce = os.urandom(wire.NONCE_SIZE)
    request = wire.Request(wire.FrameType.ECHO, wire.Proto.TCP, canary.port, nonce).encode(key)
    return Greeting(request, wire.REPLY_SIZE, key, canary.port)


async def verify_canary(stream: Stream, hello: Greeting | None = None) -> None:
    """Greet the canary (``hello``, default a nonce line to an echo service) and check its answer."""
    hello = hello or echo_greeting()
    with at_stage(Stage.TUNNEL):
        await stream.send(hello.first)
    hello.check(await recv_exactly(stream, hello.answer_size, Stage.TUNNEL))


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
