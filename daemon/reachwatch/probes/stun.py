"""``stun``: does a STUN server answer a Binding request (RFC 5389) from here?

Snowflake needs STUN (its ``ice=`` servers) before any WebRTC connection can start; a censor that drops
UDP to well-known STUN servers breaks Snowflake without touching its broker. One Binding request over
UDP, retransmitted like RFC 5389 section 7.2.1 asks (RTO 500 ms, doubling) while the deadline allows.

A reply counts only if it is a STUN message (top two bits zero, magic cookie, length consistent) with
*our* transaction ID; anything else is ignored by ``reachwatch.net.udp``. A Binding error response is
``protocol_error``; a success response must carry XOR-MAPPED-ADDRESS (or, from RFC 3489 servers,
MAPPED-ADDRESS). The mapped address is our own public address as the server saw it: it identifies the
vantage (and so the operator), so it is never recorded, not even as a ``public_fact`` (facts reach the
status API, the journal and ``check --json``). Only the bool fact ``nat`` is kept: whether the mapped
address/port differ from our socket's own, i.e. whether a NAT sits between us and the server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import struct

from reachwatch.config.targets.stun import StunTarget
from reachwatch.config.types import split_host_port
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.net.dial import pin_address
from reachwatch.net.udp import UdpSocket, open_udp
from reachwatch.probes.base import ProbeContext, ProbeSpec

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
ATTR_MAPPED_ADDRESS = 0x0001
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_ERROR_CODE = 0x0009
_HEADER = struct.Struct("!HHI12s")
_RTO = 0.5
_MAX_SENDS = 7  # RFC 5389 Rc


def binding_request(transaction_id: bytes) -> bytes:
    return _HEADER.pack(BINDING_REQUEST, 0, MAGIC_COOKIE, transaction_id)


def is_response_to(transaction_id: bytes, data: bytes) -> bool:
    """A well-formed STUN message answering our transaction (RFC 5389 section 6)."""
    if len(data) < _HEADER.size:
        return False
    msg_type, length, cookie, tid = _HEADER.unpack_from(data)
    return bool(
        msg_type & 0xC000 == 0
        and cookie == MAGIC_COOKIE
        and tid == transaction_id
        and length % 4 == 0
        and length == len(data) - _HEADER.size
    )


def parse_attributes(data: bytes) -> dict[int, bytes]:
    """Attribute type -> value (first occurrence); raises ``ValueError`` on a truncated attribute."""
    attrs: dict[int, bytes] = {}
    offset = _HEADER.size
    while offset < len(data):
        if offset + 4 > len(data):
            raise ValueError("truncated attribute header")
        attr_type, length = struct.unpack_from("!HH", data, offset)
        value = data[offset + 4 : offset + 4 + length]
        if len(value) != length:
            raise ValueError("truncated attribute value")
        attrs.setdefault(attr_type, value)
        offset += 4 + length + (-length % 4)  # values are padded to 4 bytes
    return attrs


def decode_address(value: bytes, transaction_id: bytes, *, xor: bool) -> str:
    """``ip:port`` from a (XOR-)MAPPED-ADDRESS value; raises ``ValueError`` if malformed."""
    if len(value) < 4:
        raise ValueError("short address attribute")
    family, port = value[1], struct.unpack_from("!H", value, 2)[0]
    raw = value[4:]
    if xor:
        port ^= MAGIC_COOKIE >> 16
        key = struct.pack("!I", MAGIC_COOKIE) + transaction_id
        raw = bytes(b ^ k for b, k in zip(raw, key, strict=False))
    if family == 0x01 and len(raw) == 4:
        return f"{ipaddress.IPv4Address(raw)}:{port}"
    if family == 0x02 and len(raw) == 16:
        return f"[{ipaddress.IPv6Address(raw)}]:{port}"
    raise ValueError("unknown address family")


async def probe(target: StunTarget, ctx: ProbeContext) -> ProbeResult:
    with ctx.stage(Stage.RESOLVE):
        ip = await pin_address(target.host)
    ctx.public_fact("ip", ip)
    transaction_id = os.urandom(12)
    with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
        sock = await open_udp(ip, target.port)
        try:
            local = sock.local_address()
            reply = await _exchange(sock, transaction_id, ctx)
        finally:
            sock.close()
    msg_type = struct.unpack_from("!H", reply)[0]
    try:
        attrs = parse_attributes(reply)
        if msg_type == BINDING_ERROR:
            code = attrs.get(ATTR_ERROR_CODE, b"\0\0\0\0")
            ctx.fact("stun_error_code", code[2] * 100 + code[3] if len(code) >= 4 else 0)
            return ctx.fail(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
        if msg_type != BINDING_SUCCESS:
            return ctx.fail(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
        if ATTR_XOR_MAPPED_ADDRESS in attrs:
            mapped = decode_address(attrs[ATTR_XOR_MAPPED_ADDRESS], transaction_id, xor=True)
        elif ATTR_MAPPED_ADDRESS in attrs:
            mapped = decode_address(attrs[ATTR_MAPPED_ADDRESS], transaction_id, xor=False)
        else:
            return ctx.fail(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
        nat = _behind_nat(mapped, local)  # raises ValueError on a mapped port 0
    except ValueError:
        return ctx.fail(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
    # the mapped address is the vantage's own public address: never a fact, only whether it differs
    ctx.fact("nat", nat)
    return ctx.succeed()


def _behind_nat(mapped: str, local: tuple[str, int]) -> bool:
    """Whether the server saw another address or port than our socket's own (``mapped`` is ``ip:port``
    as ``decode_address`` spells it)."""
    mapped_host, mapped_port = split_host_port(mapped)
    local_host = local[0].partition("%")[0]  # an IPv6 link-local sockname may carry a scope
    same_ip = ipaddress.ip_address(mapped_host) == ipaddress.ip_address(local_host)
    return not (same_ip and mapped_port == local[1])


async def _exchange(sock: UdpSocket, transaction_id: bytes, ctx: ProbeContext) -> bytes:
    request = binding_request(transaction_id)
    rto = _RTO
    for attempt in range(_MAX_SENDS):
        sock.send(request)
        ctx.fact("stun_requests_sent", attempt + 1)
        try:
            return await asyncio.wait_for(sock.recv(lambda d: is_response_to(transaction_id, d)), timeout=rto)
        except TimeoutError:
            rto *= 2
    # the last wait lasts until the probe's deadline (run_probe reports generic_timeout_error here)
    return await sock.recv(lambda d: is_response_to(transaction_id, d))


SPEC = ProbeSpec(
    kind="stun", target_model=StunTarget, probe=probe, description="STUN Binding request (RFC 5389)"
)
