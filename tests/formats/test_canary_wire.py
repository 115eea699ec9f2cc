"""The canary protocol on bytes alone: what verifies, what does not, and that no input can make the
decoder raise anything but ``FrameError``. The real exchange (a running canary, a survey) is
``tests/probes/test_port_survey.py``."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reachwatch.formats import canary as wire

SECRET = b"0123456789abcdef0123456789abcdef"
KEY = wire.derive_key(SECRET)


def request(kind: wire.FrameType = wire.FrameType.PROBE, port: int = 443) -> wire.Request:
    return wire.Request(kind, wire.Proto.UDP, port, os.urandom(wire.NONCE_SIZE))


def test_a_request_round_trips_and_its_reply_verifies_against_it() -> None:
    sent = request(wire.FrameType.ECHO, 3785).encode(KEY)
    assert len(sent) == wire.REQUEST_SIZE == 60
    got = wire.decode_request(sent, KEY)
    assert (got.type, got.proto, got.port) == (wire.FrameType.ECHO, wire.Proto.UDP, 3785)
    reply = wire.encode_reply(got, KEY, proto=wire.Proto.TCP, port=179)
    assert len(reply) <= len(sent)  # never an amplifier
    verified = wire.verify_reply(reply, KEY, sent)
    assert (verified.proto, verified.port, verified.nonce) == (wire.Proto.TCP, 179, got.nonce)


def test_the_key_is_derived_not_the_secret_itself_and_short_secrets_are_refused() -> None:
    assert hmac.digest(SECRET, wire.KEY_LABEL, hashlib.sha256) == KEY
    assert KEY != SECRET
    with pytest.raises(ValueError, match="at least 16 bytes"):
        wire.derive_key(b"short")


@pytest.mark.parametrize("offset", range(wire.REQUEST_SIZE))
def test_any_flipped_byte_of_a_request_is_refused(offset: int) -> None:
    sent = bytearray(request().encode(KEY))
    sent[offset] ^= 0x01
    with pytest.raises(wire.FrameError):
        wire.decode_request(bytes(sent), KEY)


def test_refusals_name_a_closed_reason() -> None:
    sent = request().encode(KEY)
    other_key = wire.derive_key(b"another secret, 16+ bytes")
    cases = {
        "short": sent[:-1],
        "field": sent + b"\0",
        "magic": b"XXXX" + sent[4:],
        "version": sent[:4] + b"\x02" + sent[5:],
        "type": sent[:5] + b"\x03" + sent[6:],
    }
    for reason, data in cases.items():
        with pytest.raises(wire.FrameError) as exc:
            wire.decode_request(data, KEY)
        assert exc.value.reason == reason
    with pytest.raises(wire.FrameError) as exc:
        wire.decode_request(sent, other_key)
    assert exc.value.reason == "mac"
    assert set(wire.REJECT_REASONS) >= {"short", "field", "magic", "version", "type", "mac"}


def test_a_reply_made_for_another_request_or_with_another_key_does_not_verify() -> None:
    first, second = request().encode(KEY), request().encode(KEY)
    reply = wire.encode_reply(wire.decode_request(first, KEY), KEY, proto=wire.Proto.UDP, port=443)
    with pytest.raises(wire.FrameError):
        wire.verify_reply(reply, KEY, second)  # a replayed reply to an old request
    with pytest.raises(wire.FrameError):
        wire.verify_reply(reply, wire.derive_key(b"another secret, 16+ bytes"), first)
    with pytest.raises(wire.FrameError):
        wire.verify_reply(first, KEY, first)  # our own request reflected back is no reply


@given(st.binary(max_size=200))
def test_decoding_arbitrary_bytes_only_ever_refuses(data: bytes) -> None:
    try:
        wire.decode_request(data, KEY)
    except wire.FrameError as exc:
        assert exc.reason in wire.REJECT_REASONS
    sent = request().encode(KEY)
    with contextlib.suppress(wire.FrameError):
        wire.verify_reply(data, KEY, sent)


@given(st.binary(min_size=wire.HEADER_SIZE, max_size=wire.HEADER_SIZE), st.binary(min_size=16, max_size=16))
def test_a_forged_header_with_any_nonce_never_verifies(header: bytes, nonce: bytes) -> None:
    forged = wire.MAGIC + bytes([wire.VERSION]) + header[5:] + nonce + b"\0" * wire.MAC_SIZE
    with pytest.raises(wire.FrameError):
        wire.decode_request(forged, KEY)
