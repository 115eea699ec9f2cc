"""OpenVPN control-channel packets: the client hard reset, the server's reset reply, and their wrappings.

Only what a liveness probe needs: build ``P_CONTROL_HARD_RESET_CLIENT_V2`` (or ``_V3`` for tls-crypt-v2) and
check that a reply is a ``P_CONTROL_HARD_RESET_SERVER_V2`` acknowledging *our* session and packet. Three
wrappings protect the control channel (OpenVPN ``ssl_pkt.c``, ``tls_crypt.c``, ``doc/tls-crypt-v2.txt``):

- none: ``opcode | session_id | ack array | message packet-id | payload``;
- ``tls-auth``: an HMAC (the ``auth`` digest) and a replay packet-id + timestamp after the session id; the
  HMAC covers ``replay_id | time | opcode | session_id | rest``;
- ``tls-crypt``: replay id + time, then an HMAC-SHA256 tag over header and plaintext, then the plaintext
  encrypted with AES-256-CTR (IV = first 16 bytes of the tag);
- ``tls-crypt-v2``: tls-crypt with the per-client key, the wrapped client key appended to the reset.

Replies are authenticated with the inbound key before they are believed: a forged or corrupted reply parses
to ``None``. No sockets here; ``probes/openvpn.py`` does the talking.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

P_CONTROL_HARD_RESET_CLIENT_V2 = 7
P_CONTROL_HARD_RESET_SERVER_V2 = 8
P_CONTROL_HARD_RESET_CLIENT_V3 = 10
KEY_ID = 0
# a reset reply is small (acks + optional early-negotiation TLVs); anything bigger is not one
MAX_RESET_REPLY = 1024

_STATIC_KEY = re.compile(
    r"-----BEGIN OpenVPN Static key V1-----(.*?)-----END OpenVPN Static key V1-----", re.S
)
_V2_CLIENT_KEY = re.compile(
    r"-----BEGIN OpenVPN tls-crypt-v2 client key-----(.*?)-----END OpenVPN tls-crypt-v2 client key-----",
    re.S,
)
STATIC_KEY_LEN = 256  # "2048 bit OpenVPN static key": two directions x (64 B cipher, 64 B HMAC)


class KeyFormatError(ValueError):
    """A key file that is not what its field says it is."""


def opcode_byte(opcode: int, key_id: int = KEY_ID) -> int:
    return (opcode << 3) | key_id


@dataclass(frozen=True)
class StaticKey:
    """The 2048-bit static key file: ``keys[d] = (cipher[64], hmac[64])`` for directions d = 0, 1."""

    raw: bytes

    def cipher(self, direction: int) -> bytes:
        return self.raw[direction * 128 : direction * 128 + 64]

    def hmac(self, direction: int) -> bytes:
        return self.raw[direction * 128 + 64 : direction * 128 + 128]


def parse_static_key(text: str) -> StaticKey:
    """Parse ``-----BEGIN OpenVPN Static key V1-----`` hex (comment lines allowed, as written by openvpn)."""
    match = _STATIC_KEY.search(text)
    if not match:
        raise KeyFormatError("not an OpenVPN static key (no 'BEGIN OpenVPN Static key V1' block)")
    hexdigits = re.sub(r"\s+", "", match.group(1))
    try:
        raw = bytes.fromhex(hexdigits)
    except ValueError:
        raise KeyFormatError("OpenVPN static key block is not hex") from None
    if len(raw) != STATIC_KEY_LEN:
        raise KeyFormatError(f"OpenVPN static key has {len(raw)} bytes, expected {STATIC_KEY_LEN}")
    return StaticKey(raw)


def parse_tls_crypt_v2_client_key(text: str) -> tuple[StaticKey, bytes]:
    """Split a tls-crypt-v2 client key file into the client key ``Kc`` and the wrapped key ``WKc``."""
    match = _V2_CLIENT_KEY.search(text)
    if not match:
        raise KeyFormatError("not an OpenVPN tls-crypt-v2 client key")
    try:
        blob = base64.b64decode(re.sub(r"\s+", "", match.group(1)), validate=True)
    except ValueError:
        raise KeyFormatError("tls-crypt-v2 client key is not base64") from None
    wkc = blob[STATIC_KEY_LEN:]
    # WKc ends with its own 16-bit length (tag + encrypted key + metadata + length field)
    if len(wkc) < 2 or struct.unpack(">H", wkc[-2:])[0] != len(wkc):
        raise KeyFormatError("tls-crypt-v2 client key has a malformed wrapped key")
    return StaticKey(blob[:STATIC_KEY_LEN]), wkc


class Wrapper(Protocol):
    """One control-channel protection mode; ``unwrap`` returns ``None`` for anything not authentic."""

    def wrap(self, op: int, session_id: bytes, body: bytes, replay_id: int, now: int) -> bytes: ...

    def unwrap(self, packet: bytes) -> tuple[int, bytes, bytes] | None: ...


class PlainWrapper:
    def wrap(self, op: int, session_id: bytes, body: bytes, replay_id: int, now: int) -> bytes:
        return bytes([op]) + session_id + body

    def unwrap(self, packet: bytes) -> tuple[int, bytes, bytes] | None:
        if len(packet) < 9:
            return None
        return packet[0], packet[1:9], packet[9:]


def key_directions(key_direction: int | None) -> tuple[int, int]:
    """(outbound, inbound) key slot: bidirectional uses slot 0 both ways; direction 1 is the usual client."""
    if key_direction is None:
        return 0, 0
    return (1, 0) if key_direction == 1 else (0, 1)


class TlsAuthWrapper:
    def __init__(self, key: StaticKey, key_direction: int | None, digest: str = "sha1") -> None:
        self.digest = digest.lower().replace("-", "")
        try:
            self.size = hashlib.new(self.digest).digest_size
        except ValueError:
            raise KeyFormatError(f"unknown auth digest {digest!r}") from None
        out_dir, in_dir = key_directions(key_direction)
        self._out = key.hmac(out_dir)[: self.size]
        self._in = key.hmac(in_dir)[: self.size]

    def wrap(self, op: int, session_id: bytes, body: bytes, replay_id: int, now: int) -> bytes:
        replay = struct.pack(">II", replay_id, now)
        header = bytes([op]) + session_id
        mac = hmac.new(self._out, replay + header + body, self.digest).digest()
        return header + mac + replay + body

    def unwrap(self, packet: bytes) -> tuple[int, bytes, bytes] | None:
        if len(packet) < 9 + self.size + 8:
            return None
        header, mac = packet[:9], packet[9 : 9 + self.size]
        replay, body = packet[9 + self.size : 17 + self.size], packet[17 + self.size :]
        expected = hmac.new(self._in, replay + header + body, self.digest).digest()
        if not hmac.compare_digest(mac, expected):
            return None
        return packet[0], packet[1:9], body


class TlsCryptWrapper:
    """tls-crypt (and the per-client half of tls-crypt-v2, which appends ``trailer`` = WKc to resets)."""

    TAG = 32

    def __init__(self, key: StaticKey, trailer: bytes = b"") -> None:
        # tls_crypt_init_key: the client uses the inverse direction (sends with slot 1, receives with 0)
        self._out = (key.cipher(1)[:32], key.hmac(1)[:32])
        self._in = (key.cipher(0)[:32], key.hmac(0)[:32])
        self.trailer = trailer

    @staticmethod
    def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
        ctx = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
        return ctx.update(data) + ctx.finalize()

    def wrap(self, op: int, session_id: bytes, body: bytes, replay_id: int, now: int) -> bytes:
        header = bytes([op]) + session_id + struct.pack(">II", replay_id, now)
        enc_key, mac_key = self._out
        tag = hmac.new(mac_key, header + body, "sha256").digest()
        return header + tag + self._ctr(enc_key, tag[:16], body) + self.trailer

    def unwrap(self, packet: bytes) -> tuple[int, bytes, bytes] | None:
        if len(packet) < 17 + self.TAG:
            return None
        header, tag, enc = packet[:17], packet[17 : 17 + self.TAG], packet[17 + self.TAG :]
        enc_key, mac_key = self._in
        body = self._ctr(enc_key, tag[:16], enc)
        expected = hmac.new(mac_key, header + body, "sha256").digest()
        if not hmac.compare_digest(tag, expected):
            return None
        return packet[0], packet[1:9], body


def control_body(acks: list[int], remote_session: bytes | None, message_id: int | None) -> bytes:
    """``ack count | acked packet-ids | remote session id (if acks) | message packet-id``."""
    out = bytes([len(acks)]) + b"".join(struct.pack(">I", a) for a in acks)
    if acks:
        out += remote_session or b"\x00" * 8
    if message_id is not None:
        out += struct.pack(">I", message_id)
    return out


def client_reset(wrapper: Wrapper, session_id: bytes, *, replay_id: int, now: int, v3: bool = False) -> bytes:
    """The client's first packet (message packet-id 0, no payload)."""
    op = P_CONTROL_HARD_RESET_CLIENT_V3 if v3 else P_CONTROL_HARD_RESET_CLIENT_V2
    return wrapper.wrap(opcode_byte(op), session_id, control_body([], None, 0), replay_id, now)


@dataclass(frozen=True)
class ServerReset:
    """A verified ``P_CONTROL_HARD_RESET_SERVER_V2`` acknowledging our reset."""

    server_session_id: bytes
    acks: tuple[int, ...]
    message_id: int


def parse_server_reset(wrapper: Wrapper, packet: bytes, our_session_id: bytes) -> ServerReset | None:
    """The reply if it is an authentic server reset that ACKs our packet-id 0 for our session, else None."""
    if len(packet) > MAX_RESET_REPLY:
        return None
    opened = wrapper.unwrap(packet)
    if opened is None:
        return None
    op, server_sid, body = opened
    if op != opcode_byte(P_CONTROL_HARD_RESET_SERVER_V2) or not body:
        return None
    n = body[0]
    need = 1 + 4 * n + (8 if n else 0) + 4
    if n == 0 or n > 8 or len(body) < need:
        return None
    acks = struct.unpack(f">{n}I", body[1 : 1 + 4 * n])
    remote = body[1 + 4 * n : 9 + 4 * n]
    (message_id,) = struct.unpack(">I", body[9 + 4 * n : 13 + 4 * n])
    if remote != our_session_id or 0 not in acks:
        return None
    return ServerReset(server_sid, tuple(acks), message_id)
