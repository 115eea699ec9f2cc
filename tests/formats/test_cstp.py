"""CSTP framing on bytes alone: frames round-trip, and arbitrary headers (fuzzed) are refused with
``CstpError`` or parsed, never anything else. The real ocserv exchange is in
tests/vpn/test_openconnect_tunnel.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reachwatch.formats import cstp


def test_a_data_frame_carries_its_length_type_and_payload() -> None:
    framed = cstp.frame(cstp.FrameType.DATA, b"\x45" + bytes(27))
    assert framed[:4] == b"STF\x01" and len(framed) == cstp.HEADER_LEN + 28
    assert cstp.parse_header(framed[: cstp.HEADER_LEN]) == (cstp.FrameType.DATA, 28)
    assert cstp.parse_header(cstp.frame(cstp.FrameType.DPD_REQUEST)) == (cstp.FrameType.DPD_REQUEST, 0)


def test_a_payload_over_the_length_field_is_refused() -> None:
    with pytest.raises(ValueError, match="65535"):
        cstp.frame(cstp.FrameType.DATA, bytes(cstp.MAX_PAYLOAD + 1))


@given(st.binary(min_size=cstp.HEADER_LEN, max_size=cstp.HEADER_LEN))
def test_any_eight_bytes_are_a_header_or_a_cstp_error(header: bytes) -> None:
    try:
        kind, length = cstp.parse_header(header)
    except cstp.CstpError:
        assert header[:4] != cstp.MAGIC
    else:
        assert header[:4] == cstp.MAGIC and 0 <= length <= cstp.MAX_PAYLOAD and 0 <= kind <= 255
