"""ICMP echo inside tunnels, on bytes alone: a request the kernel would accept, a reply checked field by
field, and arbitrary bytes (fuzzed) never taken for a reply nor raising."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from reachwatch.formats import ip_packets as ip

US, THEM = "10.77.0.2", "10.77.0.1"


def as_reply(request: bytes) -> bytes:
    """What a kernel answers to ``request``: addresses swapped, type 0, checksums redone."""
    header, icmp = bytearray(request[:20]), bytearray(request[20:])
    header[12:16], header[16:20] = request[16:20], request[12:16]
    header[10:12] = b"\x00\x00"
    header[10:12] = struct.pack("!H", ip.checksum(bytes(header)))
    icmp[0], icmp[2:4] = ip.ICMP_ECHO_REPLY, b"\x00\x00"
    icmp[2:4] = struct.pack("!H", ip.checksum(bytes(icmp)))
    return bytes(header + icmp)


def test_request_has_valid_checksums_lengths_and_addresses() -> None:
    packet = ip.echo_request(US, THEM, 0x1234, 7, b"x" * 100)
    assert len(packet) == 20 + 8 + 100 and struct.unpack("!H", packet[2:4])[0] == len(packet)
    assert ip.checksum(packet[:20]) == 0 and ip.checksum(packet[20:]) == 0
    assert packet[9] == ip.PROTO_ICMP and packet[20] == ip.ICMP_ECHO_REQUEST


def test_reply_is_parsed_with_its_sequence_and_payload_even_when_padded() -> None:
    reply = as_reply(ip.echo_request(US, THEM, 0x1234, 7, b"payload"))
    assert ip.parse_echo_reply(reply + bytes(9), src=THEM, dst=US, ident=0x1234) == (7, b"payload")


def test_a_reply_for_someone_else_or_damaged_is_not_ours() -> None:
    reply = as_reply(ip.echo_request(US, THEM, 0x1234, 7, b"payload"))
    assert ip.parse_echo_reply(reply, src=THEM, dst=US, ident=0x4321) is None  # another identifier
    assert ip.parse_echo_reply(reply, src="10.77.0.9", dst=US, ident=0x1234) is None  # another source
    flipped = bytearray(reply)
    flipped[-1] ^= 1
    assert ip.parse_echo_reply(bytes(flipped), src=THEM, dst=US, ident=0x1234) is None  # checksum
    request = ip.echo_request(THEM, US, 0x1234, 7, b"payload")  # a request, not a reply
    assert ip.parse_echo_reply(request, src=THEM, dst=US, ident=0x1234) is None


@given(st.binary(max_size=1600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    ip.parse_echo_reply(data, src=THEM, dst=US, ident=1)
