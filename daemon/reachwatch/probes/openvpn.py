"""``openvpn``: does an OpenVPN server answer a real client hard reset, over UDP or TCP?

One attempt sends ``P_CONTROL_HARD_RESET_CLIENT_V2`` (``_V3`` with tls-crypt-v2) with a fresh random session
id, wrapped as the server expects (plain, ``tls-auth``, ``tls-crypt``, ``tls-crypt-v2``; packets in
``formats/openvpn_packets.py``), and succeeds on an authenticated ``P_CONTROL_HARD_RESET_SERVER_V2`` that ACKs
our packet for our session. No certificate or password is needed for this; the deeper check that runs the
real client is ``openvpn_tunnel``.

Reading silence. A server protected by tls-auth/tls-crypt drops every packet it cannot authenticate
without a word, so "no answer" alone proves nothing (wrong key, dead server, or a filter). The probe
returns ``protocol_handshake``/``generic_timeout_error`` and marks ``protocol_blocking`` evidence only when
all of these hold (our rule for the issue's "only when a control says the path is fine"):

1. this endpoint answered our handshake before (in this process) with the same address, mode and key
   file content: the key and address are right;
2. the path to it works now: the TCP connect succeeded (TCP), or the configured ``control`` UDP endpoint on
   the same route (e.g. an echo service on the VPN host) answered a non-OpenVPN datagram sent at the same
   time (UDP);
3. nothing authentic came back.

Otherwise the silence stays unattributed (the verdict engine may still attribute it with a reference
vantage); ``vpn/path_control.py`` holds the control, ``probes/handshakes.py`` the rule and the memory
(which a reload that changes the endpoint clears). Replies that fail authentication
or do not ACK our session are ignored; if only such replies arrive the failure is ``protocol_error``:
a forged reply never counts as success.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time

from reachwatch.config.secrets import read_secret_file
from reachwatch.config.targets.openvpn import OpenVpnTarget
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage
from reachwatch.formats.openvpn_packets import (
    MAX_RESET_REPLY,
    KeyFormatError,
    PlainWrapper,
    ServerReset,
    TlsAuthWrapper,
    TlsCryptWrapper,
    Wrapper,
    client_reset,
    parse_server_reset,
    parse_static_key,
    parse_tls_crypt_v2_client_key,
)
from reachwatch.model import ProbeResult
from reachwatch.net.dial import close_quietly, connect_tcp, pin_address
from reachwatch.net.errors import NetFailure, classified
from reachwatch.net.udp import UdpSocket, open_udp
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.vpn.path_control import ReplyTally, control_answers, control_result

MAX_TCP_PACKETS = 8  # packets read on TCP before giving up on finding the reset reply


def build_wrapper(target: OpenVpnTarget, ctx: ProbeContext) -> tuple[Wrapper, bytes]:
    """The wrapping for the target's mode, keys read from their files (permission-checked), and the key
    file's bytes (``b""`` for plain): the material "answered before" is about (``probes.handshakes``)."""
    try:
        if target.tls_auth_file:
            raw = read_secret_file(target.tls_auth_file, ctx.base_dir, "tls_auth_file")
            return TlsAuthWrapper(parse_static_key(raw.decode()), target.key_direction, target.auth), raw
        if target.tls_crypt_file:
            raw = read_secret_file(target.tls_crypt_file, ctx.base_dir, "tls_crypt_file")
            return TlsCryptWrapper(parse_static_key(raw.decode())), raw
        if target.tls_crypt_v2_file:
            raw = read_secret_file(target.tls_crypt_v2_file, ctx.base_dir, "tls_crypt_v2_file")
            key, wkc = parse_tls_crypt_v2_client_key(raw.decode())
            return TlsCryptWrapper(key, trailer=wkc), raw
    except (KeyFormatError, UnicodeDecodeError) as exc:
        raise ConfigError(f"targets.{target.name}", str(exc)) from None
    return PlainWrapper(), b""


async def _udp_handshake(
    sock: UdpSocket, wrapper: Wrapper, sid: bytes, *, v3: bool, retransmit: float, tally: ReplyTally
) -> ServerReset:
    """Send the reset, resending every ``retransmit`` s with a new replay id; stop at a verified reply."""
    replay_id = 1
    while True:
        sock.send(client_reset(wrapper, sid, replay_id=replay_id, now=int(time.time()), v3=v3))
        replay_id += 1
        try:
            async with asyncio.timeout(retransmit):
                while True:
                    data = await sock.recv()
                    reply = parse_server_reset(wrapper, data, sid)
                    if reply is not None:
                        return reply
                    tally.reject()
        except TimeoutError:
            continue


async def _tcp_handshake(
    ip: str, port: int, wrapper: Wrapper, sid: bytes, *, v3: bool, ctx: ProbeContext, tally: ReplyTally
) -> ServerReset | None:
    with ctx.stage(Stage.CONNECT):
        reader, writer = await connect_tcp(ip, port)
    ctx.fact("tcp_connected", True)
    try:
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE), classified(Stage.PROTOCOL_HANDSHAKE):
            packet = client_reset(wrapper, sid, replay_id=1, now=int(time.time()), v3=v3)
            writer.write(struct.pack(">H", len(packet)) + packet)
            await writer.drain()
            for _ in range(MAX_TCP_PACKETS):
                (length,) = struct.unpack(">H", await reader.readexactly(2))
                if length > MAX_RESET_REPLY:
                    raise NetFailure(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE, "oversized packet")
                reply = parse_server_reset(wrapper, await reader.readexactly(length), sid)
                if reply is not None:
                    return reply
                tally.reject()
            return None
    finally:
        await close_quietly(writer)


async def probe(target: OpenVpnTarget, ctx: ProbeContext) -> ProbeResult:
    # key files are read on every attempt (rotation without reload): off the event loop
    wrapper, material = await asyncio.to_thread(build_wrapper, target, ctx)
    v3 = target.tls_crypt_v2_file is not None
    ctx.fact("mode", target.mode())
    ctx.fact("proto", target.proto)
    with ctx.stage(Stage.RESOLVE):
        ip = await pin_address(target.host)
    ctx.public_fact("ip", ip)
    sid = os.urandom(8)
    # keep a little time after our own wait so the outcome is ours, not the runner's deadline
    wait = max(0.1, ctx.remaining() - min(0.5, ctx.timeout * 0.1))
    control_task = (
        asyncio.create_task(control_answers(target.control)) if target.control is not None else None
    )
    reply: ServerReset | None = None
    tally = ReplyTally()
    path_ok = False
    try:
        if target.proto == "tcp":
            async with asyncio.timeout(wait):
                try:
                    reply = await _tcp_handshake(ip, target.port, wrapper, sid, v3=v3, ctx=ctx, tally=tally)
                finally:
                    path_ok = bool(ctx.facts.get("tcp_connected"))
        else:
            with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
                sock = await open_udp(ip, target.port)
                try:
                    async with asyncio.timeout(wait):
                        reply = await _udp_handshake(
                            sock, wrapper, sid, v3=v3, retransmit=target.retransmit, tally=tally
                        )
                finally:
                    sock.close()
    except TimeoutError:
        pass
    finally:
        control_ok = await control_result(control_task, ctx.remaining() - 0.05)
        if control_ok is not None:
            ctx.fact("control_answered", control_ok)
            path_ok = path_ok or control_ok
    if tally.rejected:
        ctx.fact("rejected_replies", tally.rejected)
    if reply is not None:
        ctx.services.handshakes.answered(target, material)
        ctx.fact("server_reset", True)
        return ctx.succeed()
    if tally.rejected:
        return ctx.fail(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
    if target.proto == "tcp" and not ctx.facts.get("tcp_connected"):
        return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, Stage.CONNECT)  # SYN unanswered
    evidence = ctx.services.handshakes.silence_evidence(target, path_ok=path_ok, material=material)
    return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE, evidence=evidence)


SPEC = ProbeSpec(
    kind="openvpn",
    target_model=OpenVpnTarget,
    probe=probe,
    description="OpenVPN client hard reset (UDP/TCP; plain, tls-auth, tls-crypt, tls-crypt-v2)",
)
