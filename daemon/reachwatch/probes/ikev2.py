"""``ikev2``: does an IKEv2/IPsec responder answer IKE_SA_INIT on UDP 500 or 4500?

IKE_SA_INIT is unauthenticated (credentials only matter in IKE_AUTH), so any well-formed response to our
SPI proves a live IKE daemon: an SA+KE+Nonce answer, ``INVALID_KE_PAYLOAD`` (we resend once with the group it
asks for, if we can compute it), ``NO_PROPOSAL_CHOSEN`` (live; recorded as a fact, our proposals just do
not match), or a ``COOKIE`` (anti-DoS; resent once with the cookie, RFC 7296 §2.6). The facts say which.
Messages are built and checked in ``formats/ike_packets.py``; on port 4500 (or ``nat_t: true``) the non-ESP
marker is added and expected.

What success does *not* prove: that the VPN carries data. There is no data stage for IKEv2 yet (IKE_AUTH,
a CHILD_SA in UDP encapsulation and ESP in user space would be needed: ``docs/ARCHITECTURE.md``, "IKEv2:
why it stops at IKE_SA_INIT"). And IKE_AUTH carries certificates and is often IP-fragmented; a path that drops
fragments passes this probe and still breaks real clients (a known false negative, not a censor).
Silence is ``protocol_handshake``/``generic_timeout_error``; ``protocol_blocking`` evidence follows the rule
in ``probes/handshakes.py`` (this endpoint answered before + a same-path control answering now,
``vpn/path_control.py``).
"""

from __future__ import annotations

import asyncio
import os

from reachwatch.config.targets.ikev2 import Ikev2Target
from reachwatch.failures import Failure, Stage
from reachwatch.formats import ike_packets as ike
from reachwatch.model import ProbeResult
from reachwatch.net.dial import pin_address
from reachwatch.net.udp import UdpSocket, open_udp
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.vpn.path_control import ReplyTally, control_answers

_RESPONSE_NAMES = {ike.NO_PROPOSAL_CHOSEN: "no_proposal_chosen", ike.INVALID_KE_PAYLOAD: "invalid_ke_payload"}


async def _exchange(
    sock: UdpSocket, ip: str, target: Ikev2Target, ctx: ProbeContext, tally: ReplyTally
) -> ike.SaInitResponse:
    """IKE_SA_INIT with at most one INVALID_KE and one COOKIE follow-up; returns the final answer."""
    nat_t = target.uses_nat_t()
    spi_i = os.urandom(8)
    group: int = target.dh_group
    cookie: bytes | None = None
    followed: set[str] = set()
    while True:
        request = ike.build_sa_init(
            spi_i, group, local=sock.local_address(), remote=(ip, target.port), cookie=cookie, nat_t=nat_t
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
        return response


async def probe(target: Ikev2Target, ctx: ProbeContext) -> ProbeResult:
    ctx.fact("nat_t", target.uses_nat_t())
    with ctx.stage(Stage.RESOLVE):
        ip = await pin_address(target.host)
    ctx.public_fact("ip", ip)
    wait = max(0.1, ctx.remaining() - min(0.5, ctx.timeout * 0.1))
    control_task = asyncio.create_task(control_answers(target.control)) if target.control else None
    response: ike.SaInitResponse | None = None
    path_ok, tally = False, ReplyTally()
    try:
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            sock = await open_udp(ip, target.port)
            try:
                async with asyncio.timeout(wait):
                    response = await _exchange(sock, ip, target, ctx, tally)
            except TimeoutError:
                pass
            finally:
                sock.close()
    finally:
        if control_task is not None:
            try:
                async with asyncio.timeout(max(0.05, ctx.remaining() - 0.05)):
                    path_ok = await control_task
            except TimeoutError:
                path_ok = False
            ctx.fact("control_answered", path_ok)
    if tally.rejected:
        ctx.fact("rejected_replies", tally.rejected)
    if response is not None:
        ctx.services.handshakes.answered(target)  # IKE_SA_INIT needs no credentials: no key material
        error = response.error
        if error is None:
            ctx.fact("ike_response", "sa" if ike.PAYLOAD_SA in response.payloads else "cookie")
        else:
            ctx.fact("ike_response", _RESPONSE_NAMES.get(error, "notify"))
            ctx.fact("ike_notify", error)
        if response.dh_group is not None:
            ctx.fact("dh_group", response.dh_group)
        return ctx.succeed()
    if tally.rejected:
        return ctx.fail(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
    evidence = ctx.services.handshakes.silence_evidence(target, path_ok=path_ok)
    return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE, evidence=evidence)


SPEC = ProbeSpec(
    kind="ikev2",
    target_model=Ikev2Target,
    probe=probe,
    description="IKEv2 IKE_SA_INIT on UDP 500/4500 (SA, INVALID_KE, NO_PROPOSAL_CHOSEN, COOKIE)",
)
