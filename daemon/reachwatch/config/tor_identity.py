"""Tor relay identities as operators write them in a config: RSA fingerprints and Ed25519 identities.

Pure value checks, shared by the target models (``tor_relay``, ``tor_dirport``), relay-set parsing and the
link-certificate checks that compare what a relay proves on the wire with what the config expects.
"""

from __future__ import annotations

import base64
import re

_HEX40 = re.compile(r"[0-9A-F]{40}")


def normalize_fingerprint(value: str) -> str:
    """``$ABCD…``, ``abcd…`` or ``ABCD EF01 …`` -> 40 upper-case hex digits; ValueError otherwise."""
    fp = value.strip().removeprefix("$").replace(" ", "").split("~", 1)[0].split("=", 1)[0].upper()
    if _HEX40.fullmatch(fp) is None:  # a regex: 7,000 relays are parsed at every refresh
        raise ValueError("a relay fingerprint is 40 hex digits (optionally with a leading $ or spaces)")
    return fp


def decode_ed25519_identity(value: str) -> bytes:
    """The unpadded base64 Ed25519 identity of ``fingerprint-ed25519`` / consensus ``id ed25519``."""
    raw = value.strip()
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except ValueError:
        raise ValueError("ed25519_identity must be base64 (as in tor's fingerprint-ed25519 file)") from None
    if len(key) != 32:
        raise ValueError("ed25519_identity must decode to 32 bytes")
    return key
