"""IPv4 ICMP echo packets, built and checked in user space (RFC 791, RFC 792).

What the data stage sends *inside* a tunnel that carries IP packets (WireGuard, OpenConnect's CSTP): an
echo request from our tunnel address to an address inside the tunnel (the VPN server's own tunnel address
answers it in its kernel, no service needed), and the echo reply checked field by field: the right
addresses, our identifier and sequence number, the very payload we sent. No raw socket and no tun device
are involved: the packets are bytes handed to the tunnel's own encryption.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

IPV4_HEADER = 20
ICMP_HEADER = 8
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
PROTO_ICMP = 1
TTL = 64


def checksum(data: bytes) -> int:
    """The Internet checksum: one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _address(value: str) -> bytes:
    return ipaddress.IPv4Address(value).packed


def ipv4_packet(src: str, dst: str, protocol: int, payload: bytes, *, ident: int = 0) -> bytes:
    """An IPv4 packet without options; ``ident`` is the IP identification field."""
    total = IPV4_HEADER + len(payload)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0, TTL, protocol, 0, _address(src), _address(dst)
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def echo_request(src: str, dst: str, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request from ``src`` to ``dst`` carrying ``payload``, as a whole IPv4 packet."""
    icmp = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident & 0xFFFF, seq & 0xFFFF) + payload
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    return ipv4_packet(src, dst, PROTO_ICMP, icmp, ident=seq)


class EchoReply(NamedTuple):
    seq: int
    payload: bytes


def parse_echo_reply(packet: bytes, *, src: str, dst: str, ident: int) -> EchoReply | None:
    """The reply's sequence number and payload if ``packet`` is an intact echo reply from ``src`` to
    ``dst`` for our ``ident``; ``None`` for anything else (other traffic, a damaged packet, a fragment)."""
    if len(packet) < IPV4_HEADER + ICMP_HEADER or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    (total,) = struct.unpack("!H", packet[2:4])
    flags_fragment = struct.unpack("!H", packet[6:8])[0]
    if ihl < IPV4_HEADER or total > len(packet) or total < ihl + ICMP_HEADER or flags_fragment & 0x3FFF:
        return None  # short, or a fragment (more-fragments flag or an offset): we never send such sizes
    if packet[9] != PROTO_ICMP or packet[12:16] != _address(src) or packet[16:20] != _address(dst):
        return None
    if checksum(packet[:ihl]) != 0:
        return None
    icmp = packet[ihl:total]
    if checksum(icmp) != 0:
        return None
    kind, code, _, reply_ident, seq = struct.unpack("!BBHHH", icmp[:ICMP_HEADER])
    if kind != ICMP_ECHO_REPLY or code != 0 or reply_ident != ident & 0xFFFF:
        return None
    return EchoReply(seq, icmp[ICMP_HEADER:])
