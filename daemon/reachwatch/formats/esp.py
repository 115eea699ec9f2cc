"""ESP packets (RFC 4303) in tunnel mode with AES-CBC-256 + HMAC-SHA2-256-128, as carried in UDP (RFC 3948).

A packet is SPI | sequence number | IV | AES-CBC(inner IP packet | padding 1, 2, 3... | pad length | next
header 4) | ICV, the ICV over everything before it. In UDP encapsulation it is the whole datagram: a
non-zero SPI is what tells it apart from an IKE message behind the non-ESP marker. Keys come from
``formats/ike_auth.derive_child_keys``; no sockets here (``vpn/esptunnel.py`` sends them).
"""

from __future__ import annotations

import os
import struct

from reachwatch.formats.ike_auth import BLOCK, ICV_LEN, cbc_decrypt, cbc_encrypt, hmac_sha256_128, icv_ok

NEXT_HEADER_IPV4 = 4
HEADER_LEN = 8


def seal(spi: bytes, seq: int, enc_key: bytes, integ_key: bytes, packet: bytes) -> bytes:
    """One ESP packet carrying the IPv4 ``packet``."""
    pad = (-(len(packet) + 2)) % BLOCK
    plain = packet + bytes(range(1, pad + 1)) + bytes([pad, NEXT_HEADER_IPV4])
    iv = os.urandom(BLOCK)
    body = spi + struct.pack(">I", seq) + iv + cbc_encrypt(enc_key, iv, plain)
    return body + hmac_sha256_128(integ_key, body)


def open_packet(spi: bytes, enc_key: bytes, integ_key: bytes, data: bytes) -> tuple[int, bytes] | None:
    """(sequence number, inner IPv4 packet) of an ESP packet to ``spi`` that passes its integrity check;
    ``None`` for anything else."""
    if len(data) < HEADER_LEN + 2 * BLOCK + ICV_LEN or data[:4] != spi:
        return None
    if (len(data) - HEADER_LEN - ICV_LEN) % BLOCK or not icv_ok(integ_key, data[:-ICV_LEN], data[-ICV_LEN:]):
        return None
    seq = struct.unpack(">I", data[4:8])[0]
    iv = data[HEADER_LEN : HEADER_LEN + BLOCK]
    plain = cbc_decrypt(enc_key, iv, data[HEADER_LEN + BLOCK : -ICV_LEN])
    pad, next_header = plain[-2], plain[-1]
    if next_header != NEXT_HEADER_IPV4 or pad + 2 > len(plain):
        return None  # 59 (no next header) is a dummy packet; anything else is not an IPv4 tunnel packet
    return seq, plain[: len(plain) - pad - 2]
