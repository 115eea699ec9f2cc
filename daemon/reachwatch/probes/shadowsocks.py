"""``shadowsocks``: with the key, relay a nonce through the server to the canary and get it back.

Both editions: AEAD 2017 (``formats/shadowsocks.py``, password) and 2022 / SIP022 (``formats/ss2022.py``,
``2022-blake3-aes-{128,256}-gcm``, a base64 PSK of 16/32 bytes in ``password_file``/``password_env`` or
the ``ss://`` URI).

Stages: ``connect`` (TCP to the server), ``protocol_handshake`` (our request - salt, target address and
the canary's greeting in one write - until the server's first chunk decrypts: proof that it holds our key),
``tunnel`` (the decrypted answer is the canary's answer to our nonce: its echo, or with
``mode: reachwatch`` its keyed reply; anything else is ``canary_mismatch``), ``transfer`` (the data
stage, ``vpn.datastage``).

A Shadowsocks server answers nothing without the key, and also closes without a word when it cannot
reach the target; so no answer within ``response_timeout`` is ``protocol_no_response`` and a close is
``eof_error``, both at ``protocol_handshake``. Neither is blocking by itself: only a control (the same
server reached from abroad, or a TCP/protocol control on the same path) can make it so.

Clock skew (2022 edition only): SIP022 servers treat a request whose timestamp is more than 30 s from
their clock as a replay and answer it with silence, exactly what a censor dropping the session looks
like. So a wrong clock on the prober (or the server) must not be read as blocking:

- every 2022 answer is timestamped: ``clock_skew_s`` (server minus us, whole seconds) is a fact
  whenever it is 5 s or more, so drift is visible before it breaks anything;
- an answer more than 30 s off is refused as SIP022 asks: ``protocol_no_response`` at
  ``protocol_handshake`` with ``clock_skew_s`` and ``clock_skew_rejected=True``;
- silence from a server that answered less than 10 minutes ago with 10 s or more of skew is
  ``protocol_no_response`` with that last ``clock_skew_s`` and ``clock_skew_suspected=True``. The
  daemon remembers the skew per endpoint in ``Services.clock_skews`` (``probes.memory``), never
  published; a reload that changes the server forgets it.

None of these carries blocking evidence; fix the clock (NTP) first.
"""

from __future__ import annotations

import asyncio
import time

from reachwatch.config.targets.shadowsocks import SUPPORTED, ShadowsocksTarget
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage
from reachwatch.formats.ss2022 import METHODS_2022, ClockSkew, decode_psk
from reachwatch.model import ProbeResult
from reachwatch.net.errors import NetFailure
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp
from reachwatch.vpn.canary import Stream, StreamEcho, greeting, recv_exactly, verify_canary
from reachwatch.vpn.datastage import run_data_stage
from reachwatch.vpn.shadowsocks import ShadowsocksStream
from reachwatch.vpn.ss2022 import Shadowsocks2022Stream

SKEW_NOTE_S = 5  # below this a skew is timestamp granularity and network delay, not worth a fact
SKEW_SUSPECT_S = 10  # a skew this large seen recently makes a later silence a likely clock problem
SKEW_MEMORY_S = 600.0


def _psk(target: ShadowsocksTarget, method: str, password: str) -> bytes | None:
    """The raw 2022 PSK (``None`` for AEAD 2017), checked before connecting: a bad key is config."""
    if method not in METHODS_2022:
        return None
    try:
        return decode_psk(method, password)
    except ValueError as exc:
        raise ConfigError(target.name, str(exc)) from None


def _note_skew(target: ShadowsocksTarget, stream: Stream, ctx: ProbeContext) -> None:
    skew = stream.skew_s if isinstance(stream, Shadowsocks2022Stream) else None
    if skew is None:
        return
    ctx.services.clock_skews.put(target, (skew, time.monotonic()))
    if abs(skew) >= SKEW_NOTE_S:
        ctx.fact("clock_skew_s", round(skew))


def _silence(target: ShadowsocksTarget, ctx: ProbeContext) -> NetFailure:
    seen = ctx.services.clock_skews.get(target)
    if seen is not None and abs(seen[0]) >= SKEW_SUSPECT_S and time.monotonic() - seen[1] < SKEW_MEMORY_S:
        # this server answered recently with a large skew: a SIP022 server now ignoring us is more
        # likely our clock crossing its 30 s window than a censor
        ctx.fact("clock_skew_s", round(seen[0]))
        ctx.fact("clock_skew_suspected", True)
        ctx.mark_local_cause("clock_skew")
    return NetFailure(Failure.PROTOCOL_NO_RESPONSE, Stage.PROTOCOL_HANDSHAKE, "no answer from server")


async def probe(target: ShadowsocksTarget, ctx: ProbeContext) -> ProbeResult:
    # read on every attempt (rotation without reload), so off the event loop
    method, password = await asyncio.to_thread(target.key, ctx.base_dir)
    if method not in SUPPORTED:
        raise ConfigError(target.name, f"unsupported cipher {method!r}")
    psk = _psk(target, method, password)
    hello = await greeting(target.canary, ctx.base_dir)
    _, reader, writer = await open_tcp(ctx, target.host, target.port)
    host, port = target.canary.host, target.canary.port
    stream: Stream
    if psk is not None:
        stream = Shadowsocks2022Stream(reader, writer, method=method, psk=psk, host=host, port=port)
    else:
        stream = ShadowsocksStream(reader, writer, method=method, password=password, host=host, port=port)
    try:
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            await stream.send(hello.first)
            try:
                async with asyncio.timeout(min(target.response_timeout, ctx.remaining())):
                    first = await recv_exactly(stream, 1, Stage.PROTOCOL_HANDSHAKE)
            except TimeoutError:
                raise _silence(target, ctx) from None
            except ClockSkew as exc:
                # SIP022: treat as a replay. Not blocking: the clocks disagree (see the module docstring)
                ctx.fact("clock_skew_s", round(exc.skew_s))
                ctx.fact("clock_skew_rejected", True)
                ctx.mark_local_cause("clock_skew")
                raise NetFailure(Failure.PROTOCOL_NO_RESPONSE, Stage.PROTOCOL_HANDSHAKE, str(exc)) from None
            _note_skew(target, stream, ctx)
        with ctx.stage(Stage.TUNNEL):
            hello.check(first + await recv_exactly(stream, hello.answer_size - 1, Stage.TUNNEL))
            await verify_canary(stream)  # a second round trip on the same stream (the canary now echoes)
        await run_data_stage(StreamEcho(stream), target.data_stage, ctx)
    finally:
        await stream.close()
    return ctx.succeed()


SPEC = ProbeSpec(
    kind="shadowsocks",
    target_model=ShadowsocksTarget,
    probe=probe,
    description="Shadowsocks AEAD/2022: relay a nonce to the canary with the key, data stage",
)
