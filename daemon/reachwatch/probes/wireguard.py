"""``wireguard``: does a WireGuard server complete a real Noise IKpsk2 handshake with our probe peer?

The probe sends a handshake initiation (148 bytes) built with its own static key and the server's public
key (``formats/noise.py``) and succeeds only on a 92-byte response that decrypts and authenticates: proof that
the holder of the server key is alive and the path carries WireGuard. A cookie reply (server under load)
is decrypted, recorded as the fact ``cookie_reply`` and answered once with MAC2, as a real client does.

Why a dedicated probe peer. A WireGuard server answers nothing to an initiation from a key it does not
know (and, below the load threshold, nothing to a bad MAC1 either): so the probe needs a peer registered
on the server. It must be its *own* peer: a successful handshake moves the peer's endpoint to the sender
(roaming), so probing with a real user's key would steal that user's tunnel until they re-handshake, and
the TAI64N replay check would make their client's and the probe's handshakes reject each other.

Timestamps: the responder rejects an initiation whose TAI64N timestamp is not strictly later than the last
accepted one for that peer, so the last timestamp used per (server key, our key) is kept in the daemon's
``Services.wireguard_timestamps`` (``probes.memory``) and bumped when the clock has not moved on.

Data stage (``tunnel_address`` and ``ping_address`` set): the handshake alone is what censors let through,
so the probe then carries data in the session it just made, on the same UDP flow: ICMP echo requests from
``tunnel_address`` to ``ping_address`` sealed as transport messages with the session keys
(``vpn/wgtunnel.py``, ``vpn/ping.py``), their replies opened and checked, for ``data_stage.volume`` bytes
and ``data_stage.min_lifetime`` seconds (``vpn/datastage.py``). No tun device and no privilege: the
packets never touch the vantage's own network stack.

Silence is ``protocol_handshake``/``generic_timeout_error``; ``protocol_blocking`` evidence follows the rule
in ``probes/handshakes.py`` (this endpoint with these keys answered before + a same-path control answering
now, ``vpn/path_control.py``).
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from reachwatch.config.secrets import read_secret_file
from reachwatch.config.targets.wireguard import WireGuardTarget, wireguard_key
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage
from reachwatch.formats import noise
from reachwatch.model import ProbeResult
from reachwatch.net.dial import pin_address
from reachwatch.net.udp import UdpSocket, open_udp
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.vpn.datastage import run_data_stage
from reachwatch.vpn.path_control import ReplyTally, control_answers, control_result
from reachwatch.vpn.ping import PingEcho
from reachwatch.vpn.wgtunnel import WireGuardTunnel


def _read_key(path: str, ctx: ProbeContext, field: str) -> bytes:
    text = read_secret_file(path, ctx.base_dir, field).decode(errors="replace")
    try:
        return wireguard_key(text, field)
    except ValueError as exc:
        raise ConfigError(field, str(exc)) from None


def _read_keys(target: WireGuardTarget, ctx: ProbeContext) -> tuple[bytes, bytes | None]:
    """The probe peer's private key and the preshared key (if any), from their files."""
    private = _read_key(target.private_key_file, ctx, "private_key_file")
    if target.preshared_key_file is None:
        return private, None
    return private, _read_key(target.preshared_key_file, ctx, "preshared_key_file")


async def _handshake(
    sock: UdpSocket,
    static: X25519PrivateKey,
    server: bytes,
    *,
    psk: bytes | None,
    retransmit: float,
    ctx: ProbeContext,
    tally: ReplyTally,
) -> noise.Session:
    """Initiate (again every ``retransmit`` s, fresh timestamp) until an authentic response: the session."""
    ours = noise.static_public(static)
    cookie: bytes | None = None
    while True:
        timestamp = ctx.services.wireguard_timestamps.next(server, ours)
        init = noise.build_initiation(static, server, timestamp, cookie=cookie)
        sock.send(init.packet)
        try:
            async with asyncio.timeout(retransmit):
                while True:
                    data = await sock.recv()
                    session = noise.consume_response(init, static, server, data, psk)
                    if session is not None:
                        return session
                    got_cookie = noise.open_cookie_reply(init, server, data)
                    if got_cookie is not None and cookie is None:
                        ctx.fact("cookie_reply", True)
                        cookie = got_cookie
                        break  # resend at once, now with MAC2
                    tally.reject()
        except TimeoutError:
            continue


async def probe(target: WireGuardTarget, ctx: ProbeContext) -> ProbeResult:
    # key files are read on every attempt (rotation without reload): off the event loop
    private, psk = await asyncio.to_thread(_read_keys, target, ctx)
    static = X25519PrivateKey.from_private_bytes(private)
    server = wireguard_key(target.public_key, "public_key")
    with ctx.stage(Stage.RESOLVE):
        ip = await pin_address(target.host)
    ctx.public_fact("ip", ip)
    with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
        sock = await open_udp(ip, target.port)
    try:
        return await _attempt(target, ctx, sock, _Keys(static, server, psk, private))
    finally:
        sock.close()


class _Keys(NamedTuple):
    static: X25519PrivateKey
    server: bytes
    psk: bytes | None
    private: bytes


async def _attempt(target: WireGuardTarget, ctx: ProbeContext, sock: UdpSocket, keys: _Keys) -> ProbeResult:
    """Handshake (with the same-path control alongside), then the data stage on the same socket."""
    wait = max(0.1, ctx.remaining() - min(0.5, ctx.timeout * 0.1))
    control_task = asyncio.create_task(control_answers(target.control)) if target.control else None
    session: noise.Session | None = None
    path_ok, tally = False, ReplyTally()
    try:
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            try:
                async with asyncio.timeout(wait):
                    session = await _handshake(
                        sock,
                        keys.static,
                        keys.server,
                        psk=keys.psk,
                        retransmit=target.retransmit,
                        ctx=ctx,
                        tally=tally,
                    )
            except TimeoutError:
                pass
    finally:
        answered = await control_result(control_task, ctx.remaining() - 0.05)
        if answered is not None:
            path_ok = answered
            ctx.fact("control_answered", answered)
    if tally.rejected:
        ctx.fact("rejected_replies", tally.rejected)
    material = keys.private + (keys.psk or b"")  # the keys decide whether this server can answer us at all
    if session is not None:
        ctx.services.handshakes.answered(target, material)
        ctx.fact("handshake", True)
        if target.tunnel_address is not None and target.ping_address is not None:
            sock.stage = Stage.TRANSFER
            echo = PingEcho(
                WireGuardTunnel(sock, session), source=target.tunnel_address, destination=target.ping_address
            )
            await run_data_stage(echo, target.data_stage, ctx)
        return ctx.succeed()
    if tally.rejected:
        return ctx.fail(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
    evidence = ctx.services.handshakes.silence_evidence(target, path_ok=path_ok, material=material)
    return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE, evidence=evidence)


SPEC = ProbeSpec(
    kind="wireguard",
    target_model=WireGuardTarget,
    probe=probe,
    description="WireGuard Noise IKpsk2 handshake with a dedicated probe peer, then ICMP echoes inside",
)
