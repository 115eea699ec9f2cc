"""What a pure format raises when the bytes it was handed are not what the protocol allows."""

from __future__ import annotations


class StreamCorrupt(Exception):
    """A stream's framing or authentication broke (e.g. an AEAD tag did not verify, a reflected salt).

    Raised by the formats; the runtime layer (``vpn.canary.at_stage``) turns it into ``protocol_error`` at
    the stage where it happened.
    """
