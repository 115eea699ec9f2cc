"""``ikev2``: does an IKEv2/IPsec responder answer, and with the probe account's PSK, does it carry data?

Liveness (always): IKE_SA_INIT is unauthenticated, so any well-formed response to our SPI proves a live IKE
daemon: an SA+KE+Nonce answer, ``INVALID_KE_PAYLOAD`` (we resend once with the group it asks for, if we
can compute it), ``NO_PROPOSAL_CHOSEN`` (live; recorded as a fact, our proposals just do not match), or a
``COOKIE`` (anti-DoS; resent once with the cookie, RFC 7296 §2.6). The facts say which. Messages are
built and checked in ``formats/ike_packets.py``; on port 4500 (or ``nat_t: true``) the non-ESP marker is
added and expected. Without credentials the probe stops here, and success means only "its IKE responder
answers".

Data stage (``psk_file``/``psk_env`` and ``ping_address`` set): the handshake is what censors let through,
so the probe then logs in and carries data. IKE_SA_INIT offers one suite (AES-CBC-256, HMAC-SHA2-256-128,
PRF-HMAC-SHA2-256, our three groups) and a NAT-detection hash that is not ours, so the responder puts ESP
in UDP 4500; IKE_AUTH on port 4500 authenticates with the PSK, requests an inside address (CFG_REQUEST)
and one CHILD_SA (``vpn/ikeauth.py``, ``formats/ike_auth.py``); then ICMP echoes from that address to
``ping_address`` go out as ESP on the same socket and their replies are opened and checked
(``vpn/esptunnel.py``, ``formats/esp.py``, ``vpn/ping.py``) for ``data_stage.volume`` bytes and
``data_stage.min_lifetime`` seconds (``vpn/datastage.py``). At the end an INFORMATIONAL Delete ends the
IKE SA on the responder. No XFRM state, tun device or privilege on our side.

Failures: silence to IKE_SA_INIT or IKE_AUTH is ``protocol_handshake``/``generic_timeout_error``; a
refused PSK (``AUTHENTICATION_FAILED``) or a responder whose AUTH does not verify with our PSK is
``auth_failed`` at ``protocol_handshake``; a responder that refuses our one suite is ``protocol_error`` at
``protocol_handshake``, one that authenticates but creates no CHILD_SA ``protocol_error`` at ``tunnel``;
ESP that stops coming back is the data stage's ``transfer_incomplete`` at ``transfer`` with the cut point.
``protocol_blocking`` evidence follows the rule in ``probes/handshakes.py`` (this endpoint answered before
+ a same-path control answering now, ``vpn/path_control.py``). IKE_AUTH with certificates is often
IP-fragmented; with a PSK it is small, so a path that drops fragments still passes (a known false
negative for certificate users, not a censor).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from reachwatch.config.secrets import read_secret
from reachwatch.config.targets.ikev2 import Ikev2Target
from reachwatch.failures import Failure, Stage
from reachwatch.formats import ike_auth
from reachwatch.formats import ike_packets as ike
from reachwatch.model import ProbeResult
from reachwatch.net.dial import pin_address
from reachwatch.net.udp import UdpSocket, open_udp
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.vpn.datastage import DEADLINE_MARGIN, run_data_stage
from reachwatch.vpn.esptunnel import EspTunnel
from reachwatch.vpn.ikeauth import AuthOutcome, authenticate, leave
from reachwatch.vpn.path_control import ReplyTally, control_answers, control_result
from reachwatch.vpn.ping import PingEcho

NATT_PORT = 4500

_RESPONSE_NAMES = {ike.NO_PROPOSAL_CHOSEN: "no_proposal_chosen", ike.INVALID_KE_PAYLOAD: "invalid_ke_payload"}


@dataclass
class _SaInit:
    """The final IKE_SA_INIT round: what we sent (unmarked), with which secrets, and the answer."""

    response: ike.SaInitResponse
    request: bytes
    spi_i: bytes
    share: ike.KeyShare
    nonce: bytes


async def _exchange(
    sock: UdpSocket, ip: str, target: Ikev2Target, ctx: ProbeContext, tally: ReplyTally
) -> _SaInit:
    """IKE_SA_INIT with at most one INVALID_KE and one COOKIE follow-up; returns the final round."""
    nat_t = target.uses_nat_t()
    spi_i = os.urandom(8)
    group: int = target.dh_group
    cookie: bytes | None = None
    followed: set[str] = set()
    while True:
        share, nonce = ike.KeyShare(group), os.urandom(32)
        request = ike.build_sa_init(
            spi_i,
            group,
            local=sock.local_address(),
            remote=(ip, target.port),
            cookie=cookie,
            nat_t=nat_t,
            share=share,
            nonce=nonce,
            authenticating=target.data_stage_on(),
        )
        response: ike.SaInitResponse | None = None
        while response is None:
            sock.send(request)
            try:
                async with asyncio.timeout(target.retransmit):
                    while response is None:
                        response = ike.parse_sa_init_response(await sock.recv(), spi_i, nat_t=nat_t)
                        if response is None:
                            tally.reject()
            except TimeoutError:
                continue
        if ike.COOKIE in response.notifies and "cookie" not in followed:
            followed.add("cookie")
            ctx.fact("cookie", True)
            cookie = response.notifies[ike.COOKIE]
            continue
        wanted = response.notifies.get(ike.INVALID_KE_PAYLOAD, b"")
        if response.error == ike.INVALID_KE_PAYLOAD and len(wanted) == 2 and "ke" not in followed:
            requested = int.from_bytes(wanted, "big")
            ctx.fact("requested_dh_group", requested)
            if requested in ike.SUPPORTED_GROUPS and requested != group:
                followed.add("ke")
                group = requested
                continue
        return _SaInit(response, request[4:] if nat_t else request, spi_i, share, nonce)


async def probe(target: Ikev2Target, ctx: ProbeContext) -> ProbeResult:
    ctx.fact("nat_t", target.uses_nat_t())
    psk: bytes | None = None
    if target.data_stage_on():  # read on every attempt (rotation without reload): off the event loop
        text = await asyncio.to_thread(read_secret, target.psk_file, target.psk_env, ctx.base_dir, "psk_file")
        psk = (text or "").encode()
    with ctx.stage(Stage.RESOLVE):
        ip = await pin_address(target.host)
    ctx.public_fact("ip", ip)
    wait = max(0.1, ctx.remaining() - min(0.5, ctx.timeout * 0.1))
    control_task = asyncio.create_task(control_answers(target.control)) if target.control else None
    done: _SaInit | None = None
    path_ok, tally = False, ReplyTally()
    with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
        sock = await open_udp(ip, target.port)
    try:
        try:
            with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
                try:
                    async with asyncio.timeout(wait):
                        done = await _exchange(sock, ip, target, ctx, tally)
                except TimeoutError:
                    pass
        finally:
            answered = await control_result(control_task, ctx.remaining() - 0.05)
            if answered is not None:
                path_ok = answered
                ctx.fact("control_answered", answered)
        if tally.rejected:
            ctx.fact("rejected_replies", tally.rejected)
        if done is None:
            if tally.rejected:
                return ctx.fail(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
            evidence = ctx.services.handshakes.silence_evidence(target, path_ok=path_ok)
            return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE, evidence=evidence)
        response = done.response
        ctx.services.handshakes.answered(target)  # IKE_SA_INIT needs no credentials: no key material
        error = response.error
        if error is None:
            ctx.fact("ike_response", "sa" if ike.PAYLOAD_SA in response.payloads else "cookie")
        else:
            ctx.fact("ike_response", _RESPONSE_NAMES.get(error, "notify"))
            ctx.fact("ike_notify", error)
        if response.dh_group is not None:
            ctx.fact("dh_group", response.dh_group)
        if psk is None:
            return ctx.succeed()
        return await _authenticated(target, ctx, ip, sock, done=done, psk=psk)
    finally:
        sock.close()


async def _authenticated(
    target: Ikev2Target, ctx: ProbeContext, ip: str, sock: UdpSocket, *, done: _SaInit, psk: bytes
) -> ProbeResult:
    """IKE_AUTH on UDP 4500, then the data stage through the CHILD_SA's ESP on that socket."""
    response = done.response
    if response.error is not None or response.dh_group != done.share.group or not response.nonce:
        # live, but no IKE SA we can use (our one suite refused): not usable, and not a censor's doing
        return ctx.fail(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
    try:
        shared = done.share.shared(response.ke_data)
    except ValueError:
        return ctx.fail(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
    keys = ike_auth.derive_ike_keys(shared, done.nonce, response.nonce, done.spi_i, response.spi_r)
    with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
        natt = sock if target.port == NATT_PORT else await open_udp(ip, NATT_PORT)
    try:
        tally = ReplyTally()
        outcome: AuthOutcome | None = None
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            try:
                async with asyncio.timeout(max(0.1, ctx.remaining() - DEADLINE_MARGIN)):
                    outcome = await authenticate(
                        natt,
                        keys,
                        message1=done.request,
                        message2=response.message,
                        identity=target.identity,
                        psk=psk,
                        retransmit=target.retransmit,
                        tally=tally,
                    )
            except TimeoutError:
                pass
        if outcome is None:
            ctx.fact("ike_auth", "no_answer")
            failure = Failure.PROTOCOL_ERROR if tally.rejected else Failure.GENERIC_TIMEOUT_ERROR
            return ctx.fail(failure, Stage.PROTOCOL_HANDSHAKE)
        try:
            return await _child(target, ctx, natt, outcome)
        finally:
            leave(natt, keys)
    finally:
        if natt is not sock:
            natt.close()


async def _child(
    target: Ikev2Target, ctx: ProbeContext, natt: UdpSocket, outcome: AuthOutcome
) -> ProbeResult:
    answer = outcome.response
    if answer.error is not None:
        ctx.fact("ike_notify", answer.error)
    if ike_auth.AUTHENTICATION_FAILED in answer.notifies or not answer.authentic:
        # refused our PSK, or could not prove it holds the same one: the account, not the path
        ctx.fact("ike_auth", "refused" if answer.authentic or answer.notifies else "responder_unproven")
        return ctx.fail(Failure.AUTH_FAILED, Stage.PROTOCOL_HANDSHAKE)
    ctx.fact("ike_auth", "ok")
    if outcome.child is None:
        return ctx.fail(Failure.PROTOCOL_ERROR, Stage.TUNNEL)  # authenticated, but no CHILD_SA
    ctx.fact("child_sa", True)
    assert target.ping_address is not None  # data_stage_on()
    ctx.fact("ping_inside_tsr", ike_auth.in_ranges(target.ping_address, answer.tsr))
    source = answer.inside_address or natt.local_address()[0]
    ctx.fact("inside_address_assigned", answer.inside_address is not None)
    natt.stage = Stage.TRANSFER
    echo = PingEcho(EspTunnel(natt, outcome.child), source=source, destination=target.ping_address)
    await run_data_stage(echo, target.data_stage, ctx)
    return ctx.succeed()


SPEC = ProbeSpec(
    kind="ikev2",
    target_model=Ikev2Target,
    probe=probe,
    description="IKEv2 IKE_SA_INIT on UDP 500/4500; with a PSK, IKE_AUTH and ICMP echoes through ESP",
)
