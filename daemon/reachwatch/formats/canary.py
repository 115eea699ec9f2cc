"""The reachwatch canary protocol (version 1): a keyed request and the keyed reply that proves the canary.

Why keyed. ``reachwatch canary`` listens on many TCP and UDP ports of a host abroad. An echo service that
answers anyone is an open reflector (spoofed UDP sources turn it against a third party) and tells a
censor's active prober "this is a measurement canary". So the canary answers only a request carrying a
valid HMAC of a secret it shares with the prober; everything else meets silence. The reply is keyed too,
over the request's fresh nonce: a middlebox (a transparent proxy, a censor's redirect) cannot answer in
the canary's name, so "this port reached abroad" is proven, never assumed.

One request, both transports (all integers big-endian)::

    offset size  request (client -> canary), REQUEST_SIZE = 60 bytes
    0      4     magic    b"RWCN"
    4      1     version  1
    5      1     type     1 PROBE (reply, then close) | 2 ECHO (reply, then echo the stream; TCP only)
    6      1     proto    6 TCP | 17 UDP: the transport the client sent it on
    7      1     flags    0 (a v1 canary refuses anything else)
    8      2     port     the port the client sent it to
    10     2     reserved 0
    12     16    nonce    fresh random bytes for every request
    28     32    mac      HMAC-SHA256(key, bytes 0..27)

    offset size  reply (canary -> client), REPLY_SIZE = 60 bytes: never larger than the request
    0      4     magic    b"RWCN"
    4      1     version  1
    5      1     type     3 REPLY
    6      1     proto    the transport the canary received the request on
    7      1     flags    0
    8      2     port     the port the canary received it on
    10     2     reserved 0
    12     16    nonce    the request's nonce
    28     32    mac      HMAC-SHA256(key, bytes 0..27 of the reply || the request's mac)

``key`` = HMAC-SHA256(secret, ``KEY_LABEL``): the shared secret is never used as the MAC key itself, and
a future version derives another key from the same secret. ``port``/``proto`` in the reply are what the
canary saw: a censor that redirects every port to the one the canary answers on (nftables ``redirect``,
DNAT) is caught by the client comparing them with what it dialled.

Replays are not refused: a replayed request earns one reply of the same size to the address it came
from, under the canary's per-source rate limits; the client's proof comes from its own fresh nonce, and
a canary needing synchronized clocks would fail exactly when a shut-down vantage's clock drifts.

Version rule: the version byte changes whenever a field's meaning or the layout changes; a canary stays
silent to versions it does not speak (upgrade canaries before probers).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import IntEnum

MAGIC = b"RWCN"
VERSION = 1
KEY_LABEL = b"reachwatch canary v1"
NONCE_SIZE = 16
MAC_SIZE = 32
_HEADER = struct.Struct("!4sBBBBHH")  # magic, version, type, proto, flags, port, reserved
HEADER_SIZE = _HEADER.size  # 12
REQUEST_SIZE = HEADER_SIZE + NONCE_SIZE + MAC_SIZE
REPLY_SIZE = HEADER_SIZE + NONCE_SIZE + MAC_SIZE
MIN_SECRET_BYTES = 16


class FrameType(IntEnum):
    PROBE = 1
    ECHO = 2
    REPLY = 3


class Proto(IntEnum):
    """IANA protocol numbers of the transports a request can travel on."""

    TCP = 6
    UDP = 17


class FrameError(ValueError):
    """Bytes that are not a valid frame of this protocol; ``reason`` is a short closed word (``short``,
    ``magic``, ``version``, ``type``, ``field``, ``mac``, ``nonce``) the canary counts by."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"not a canary frame: {reason}")
        self.reason = reason


REJECT_REASONS = ("short", "magic", "version", "type", "field", "mac")


def derive_key(secret: bytes) -> bytes:
    """The MAC key of this protocol version, from the shared secret (at least ``MIN_SECRET_BYTES``)."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the canary secret must be at least {MIN_SECRET_BYTES} bytes")
    return hmac.digest(secret, KEY_LABEL, hashlib.sha256)


@dataclass(frozen=True, slots=True)
class Request:
    """A request as sent (``encode``) or as the canary accepted it (``decode_request``)."""

    type: FrameType
    proto: Proto
    port: int
    nonce: bytes
    mac: bytes = b""

    def encode(self, key: bytes) -> bytes:
        """The request's bytes, MAC included (``mac`` of ``self`` is ignored)."""
        body = _HEADER.pack(MAGIC, VERSION, self.type, self.proto, 0, self.port, 0) + self.nonce
        if len(self.nonce) != NONCE_SIZE or not 0 <= self.port <= 0xFFFF:
            raise ValueError("nonce must be 16 bytes and port 0..65535")
        return body + hmac.digest(key, body, hashlib.sha256)


@dataclass(frozen=True, slots=True)
class Reply:
    """A verified reply: where the canary received the request."""

    proto: Proto
    port: int
    nonce: bytes


def _header(data: bytes, size: int) -> tuple[int, int, int, int]:
    """(type, proto, flags, port) of a frame of exactly ``size`` bytes; raises ``FrameError``."""
    if len(data) < size:
        raise FrameError("short")
    if len(data) > size:
        raise FrameError("field")
    magic, version, ftype, proto, flags, port, reserved = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FrameError("magic")
    if version != VERSION:
        raise FrameError("version")
    if flags or reserved:
        raise FrameError("field")
    return ftype, proto, flags, port


def decode_request(data: bytes, key: bytes) -> Request:
    """The request in ``data`` if it is well formed and its MAC verifies; else ``FrameError``.

    Cheap checks first (size, magic, version), so garbage costs no HMAC.
    """
    ftype, proto, _, port = _header(data, REQUEST_SIZE)
    if ftype not in (FrameType.PROBE, FrameType.ECHO):
        raise FrameError("type")
    if proto not in (Proto.TCP, Proto.UDP):
        raise FrameError("field")
    body, mac = data[: HEADER_SIZE + NONCE_SIZE], data[HEADER_SIZE + NONCE_SIZE :]
    if not hmac.compare_digest(mac, hmac.digest(key, body, hashlib.sha256)):
        raise FrameError("mac")
    return Request(FrameType(ftype), Proto(proto), port, body[HEADER_SIZE:], mac)


def encode_reply(request: Request, key: bytes, *, proto: Proto, port: int) -> bytes:
    """The canary's reply to an accepted ``request``, stating where it was received."""
    body = _HEADER.pack(MAGIC, VERSION, FrameType.REPLY, proto, 0, port, 0) + request.nonce
    return body + hmac.digest(key, body + request.mac, hashlib.sha256)


def verify_reply(data: bytes, key: bytes, request_bytes: bytes) -> Reply:
    """The reply in ``data`` to the request we sent (``request_bytes``), if the canary made it.

    Raises ``FrameError``: ``mac`` when the MAC does not verify (not our canary, or another secret),
    ``nonce`` when it answers another request.
    """
    ftype, proto, _, port = _header(data, REPLY_SIZE)
    if ftype != FrameType.REPLY:
        raise FrameError("type")
    if proto not in (Proto.TCP, Proto.UDP):
        raise FrameError("field")
    body, mac = data[: HEADER_SIZE + NONCE_SIZE], data[HEADER_SIZE + NONCE_SIZE :]
    request_mac = request_bytes[HEADER_SIZE + NONCE_SIZE :]
    if not hmac.compare_digest(mac, hmac.digest(key, body + request_mac, hashlib.sha256)):
        raise FrameError("mac")
    nonce = body[HEADER_SIZE:]
    if nonce != request_bytes[HEADER_SIZE : HEADER_SIZE + NONCE_SIZE]:
        raise FrameError("nonce")
    return Reply(Proto(proto), port, nonce)
