"""WireGuard's Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake, initiator side (no sockets here).

Builds the 148-byte handshake initiation and completes the handshake from the 92-byte response
(WireGuard whitepaper §5.4; wireguard-go ``device/noise-protocol.go``), then seals and opens transport data
messages (type 4, §5.4.6) with the session keys the handshake derived: what the data stage sends through
the tunnel without a tun device. A response that does not decrypt
and authenticate under our ephemeral and static keys (and the preshared key) is rejected: only the server
holding the private key that matches the configured public key, with our peer registered, can produce one.

Also: MAC1/MAC2 (keyed BLAKE2s-128), the TAI64N timestamp, and the cookie reply (type 3, sealed with
XChaCha20-Poly1305, which comes from libsodium through PyNaCl: see ``docs/DEPENDENCIES.md``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt
from nacl.exceptions import CryptoError

CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1 = b"mac1----"
LABEL_COOKIE = b"cookie--"
MSG_INITIATION, MSG_RESPONSE, MSG_COOKIE, MSG_TRANSPORT = 1, 2, 3, 4
INITIATION_LEN, RESPONSE_LEN, COOKIE_LEN = 148, 92, 64
TRANSPORT_HEADER_LEN, TAG_LEN = 16, 16
TAI64_BASE = 0x400000000000000A


def hash_(*parts: bytes) -> bytes:
    h = hashlib.blake2s()
    for p in parts:
        h.update(p)
    return h.digest()


def mac(key: bytes, data: bytes) -> bytes:
    return hashlib.blake2s(data, key=key, digest_size=16).digest()


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.blake2s).digest()


def kdf(key: bytes, data: bytes, n: int) -> list[bytes]:
    """HKDF with HMAC-BLAKE2s, ``n`` 32-byte outputs."""
    prk = _hmac(key, data)
    out: list[bytes] = []
    prev = b""
    for i in range(1, n + 1):
        prev = _hmac(prk, prev + bytes([i]))
        out.append(prev)
    return out


def aead_seal(key: bytes, counter: int, plaintext: bytes, ad: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(b"\x00" * 4 + struct.pack("<Q", counter), plaintext, ad)


def aead_open(key: bytes, counter: int, ciphertext: bytes, ad: bytes) -> bytes:
    """Raises ``cryptography.exceptions.InvalidTag`` when the ciphertext is not authentic."""
    return ChaCha20Poly1305(key).decrypt(b"\x00" * 4 + struct.pack("<Q", counter), ciphertext, ad)


def xchacha20poly1305_open(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """XChaCha20-Poly1305 (24-byte nonce) from libsodium; raises ``nacl.exceptions.CryptoError``.

    ``cryptography`` has only the 12-byte-nonce IETF ChaCha20-Poly1305, and building the extended-nonce
    variant from it would mean writing HChaCha20 ourselves: hand-rolled crypto, which we do not ship.
    """
    return crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, ad, nonce, key)


def raw_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def dh(private: X25519PrivateKey, public: bytes) -> bytes:
    return private.exchange(X25519PublicKey.from_public_bytes(public))


def tai64n(now: float | None = None) -> bytes:
    t = time.time() if now is None else now
    seconds = int(t)
    return struct.pack(">QI", TAI64_BASE + seconds, int((t - seconds) * 1e9))


@dataclass
class Initiation:
    """State kept between sending the initiation and reading the response."""

    packet: bytes
    sender_index: int
    chaining_key: bytes
    hash: bytes
    ephemeral: X25519PrivateKey
    mac1: bytes


def build_initiation(
    static: X25519PrivateKey,
    server_public: bytes,
    timestamp: bytes,
    *,
    sender_index: int | None = None,
    cookie: bytes | None = None,
) -> Initiation:
    """A complete type-1 message; ``cookie`` (from a cookie reply) fills MAC2."""
    ck = hash_(CONSTRUCTION)
    h = hash_(ck, IDENTIFIER)
    h = hash_(h, server_public)
    eph = X25519PrivateKey.generate()
    eph_pub = raw_public(eph)
    (ck,) = kdf(ck, eph_pub, 1)
    h = hash_(h, eph_pub)
    ck, k = kdf(ck, dh(eph, server_public), 2)
    enc_static = aead_seal(k, 0, raw_public(static), h)
    h = hash_(h, enc_static)
    ck, k = kdf(ck, dh(static, server_public), 2)
    enc_time = aead_seal(k, 0, timestamp, h)
    h = hash_(h, enc_time)
    index = sender_index if sender_index is not None else struct.unpack("<I", os.urandom(4))[0]
    body = struct.pack("<BxxxI", MSG_INITIATION, index) + eph_pub + enc_static + enc_time
    mac1 = mac(hash_(LABEL_MAC1, server_public), body)
    mac2 = mac(cookie, body + mac1) if cookie else b"\x00" * 16
    return Initiation(body + mac1 + mac2, index, ck, h, eph, mac1)


@dataclass(frozen=True)
class Session:
    """The transport keys of a completed handshake, initiator side (whitepaper §5.4.5)."""

    local_index: int  # our sender index: the responder's transport messages carry it as receiver
    remote_index: int  # the responder's sender index: ours carry it as receiver
    send_key: bytes
    recv_key: bytes


def consume_response(
    init: Initiation, static: X25519PrivateKey, server_public: bytes, packet: bytes, psk: bytes | None
) -> Session | None:
    """The session if ``packet`` is an authentic response to ``init``, else None."""
    if len(packet) != RESPONSE_LEN or packet[0] != MSG_RESPONSE or packet[1:4] != b"\x00\x00\x00":
        return None
    sender, receiver = struct.unpack("<II", packet[4:12])
    if receiver != init.sender_index:
        return None
    if not hmac.compare_digest(packet[60:76], mac(hash_(LABEL_MAC1, static_public(static)), packet[:60])):
        return None
    eph_r, empty = packet[12:44], packet[44:60]
    ck = kdf(init.chaining_key, eph_r, 1)[0]
    h = hash_(init.hash, eph_r)
    try:
        ck = kdf(ck, dh(init.ephemeral, eph_r), 1)[0]
        ck = kdf(ck, dh(static, eph_r), 1)[0]
    except ValueError:  # a low-order point from a hostile peer: the shared secret would be all zeros
        return None
    ck, tau, k = kdf(ck, psk or b"\x00" * 32, 3)
    h = hash_(h, tau)
    try:
        aead_open(k, 0, empty, h)
    except InvalidTag:  # not from the holder of the server key, or a different PSK
        return None
    send_key, recv_key = kdf(ck, b"", 2)
    return Session(init.sender_index, int(sender), send_key, recv_key)


def seal_transport(session: Session, counter: int, packet: bytes) -> bytes:
    """A type-4 transport message carrying ``packet`` (an IP packet; ``b""`` is a keepalive), its
    plaintext zero-padded to a multiple of 16 bytes as the whitepaper asks."""
    padded = packet + b"\x00" * (-len(packet) % 16)
    header = struct.pack("<BxxxIQ", MSG_TRANSPORT, session.remote_index, counter)
    return header + aead_seal(session.send_key, counter, padded, b"")


def open_transport(session: Session, message: bytes) -> tuple[int, bytes] | None:
    """(counter, padded plaintext) of an authentic type-4 message for our session, else None. The caller
    strips the padding with the inner packet's own length field."""
    if len(message) < TRANSPORT_HEADER_LEN + TAG_LEN or message[0] != MSG_TRANSPORT:
        return None
    receiver, counter = struct.unpack("<IQ", message[4:16])
    if message[1:4] != b"\x00\x00\x00" or receiver != session.local_index:
        return None
    try:
        return counter, aead_open(session.recv_key, counter, message[16:], b"")
    except InvalidTag:
        return None


def static_public(static: X25519PrivateKey) -> bytes:
    return raw_public(static)


def open_cookie_reply(init: Initiation, server_public: bytes, packet: bytes) -> bytes | None:
    """The 16-byte cookie from an authentic type-3 reply to ``init``, else None."""
    if len(packet) != COOKIE_LEN or packet[0] != MSG_COOKIE:
        return None
    (receiver,) = struct.unpack("<I", packet[4:8])
    if receiver != init.sender_index:
        return None
    nonce, enc = packet[8:32], packet[32:64]
    try:
        return xchacha20poly1305_open(hash_(LABEL_COOKIE, server_public), nonce, enc, init.mac1)
    except CryptoError:  # not from the holder of the server key, or not for this initiation's MAC1
        return None


def raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
