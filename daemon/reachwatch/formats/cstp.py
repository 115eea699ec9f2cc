"""CSTP framing: how an OpenConnect/AnyConnect tunnel carries IP packets over its TLS connection.

After ``CONNECT /CSCOSSLC/tunnel`` is answered ``200``, every message on the connection is a frame: the
four bytes ``STF\\x01``, the payload length (16 bits, big-endian), the type, a zero byte, then the payload
(an IP packet for ``DATA``). Types as openconnect and ocserv use them: data, dead-peer detection request
and response, disconnect, keepalive, compressed data, terminate.
"""

from __future__ import annotations

import struct
from enum import IntEnum

MAGIC = b"STF\x01"
HEADER_LEN = 8
MAX_PAYLOAD = 0xFFFF


class FrameType(IntEnum):
    DATA = 0x00
    DPD_REQUEST = 0x03
    DPD_RESPONSE = 0x04
    DISCONNECT = 0x05
    KEEPALIVE = 0x07
    COMPRESSED = 0x08
    TERMINATE = 0x09


class CstpError(ValueError):
    """A frame header that is not CSTP: the stream is lost."""


def frame(kind: FrameType, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("CSTP payload over 65535 bytes")
    return MAGIC + struct.pack("!HBB", len(payload), kind, 0) + payload


def parse_header(header: bytes) -> tuple[int, int]:
    """(type, payload length) from an 8-byte header; ``CstpError`` if it is not one. The type is returned as
    a number: a type we do not know is skipped by the caller, not an error."""
    if len(header) != HEADER_LEN or header[:4] != MAGIC:
        raise CstpError("not a CSTP frame header")
    length, kind, _ = struct.unpack("!HBB", header[4:])
    return kind, length
