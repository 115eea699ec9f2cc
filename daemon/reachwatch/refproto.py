"""Reference protocol v2: signed observations, bytes in and bytes out (no sockets here).

A reference vantage (a reachwatch outside the country) answers ``GET /api/v2/observations?nonce=N``
with an envelope::

    {"version": 2, "payload": "<JSON text>", "key_id": "<16 hex>", "signature": "<base64>" | null}

``payload`` is the JSON text of::

    {"format": "reachwatch-observations", "version": 2, "vantage": NAME, "generated_at": T,
     "nonce": N, "observations": [{"name", "kind", "destination", "observed_at", "success", "failure",
     "stage", "stage_durations", "facts"}, ...]}

The signature is Ed25519 over ``SIGNED_PREFIX + payload`` (UTF-8): the payload travels as text so the
verifier checks exactly the bytes that were signed (no canonical JSON to agree on). The client pins the
reference's public key in its config and sends a fresh nonce, which the signed payload must echo: a
censor on the path (or a TLS interception box the vantage was made to trust) can neither forge an
observation nor replay an old answer. ``destination`` is the endpoint probed, ``null`` for private
targets (their address never leaves the reference); facts are what the reference's probe recorded,
already redacted for private targets by ``ProbeContext.public_fact``.

A v1 reference (``/api/v1/status``, unsigned, by name only) still works with the same evidence rules
when no key is pinned for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from reachwatch.failures import Failure, Stage
from reachwatch.model import Observation, ProbeResult, bounded_facts

VERSION = 2
FORMAT = "reachwatch-observations"
PATH = "/api/v2/observations"
SIGNED_PREFIX = b"reachwatch observations v2\n"
# a client nonce: 16-64 characters of [0-9A-Za-z_-] (what ``new_nonce`` makes; anything else is refused
# by the server so it cannot be made to sign text of an attacker's choosing)
NONCE_PATTERN = re.compile(r"^[0-9A-Za-z_-]{16,64}$")


class ProtocolError(ValueError):
    """An answer that is not a well-formed v2 envelope (message safe to log)."""


class SignatureRejected(ProtocolError):
    """A well-formed answer that a pinned key does not vouch for: forged, unsigned, replayed."""


@dataclass(frozen=True, slots=True)
class TargetView:
    """What the reference publishes of one target: its name, kind, destination (None when private)."""

    name: str
    kind: str
    destination: str | None
    last: ProbeResult | None


def key_id(public: Ed25519PublicKey) -> str:
    """A short stable name for a key (shown in logs and by ``keygen``): sha256 of the raw key, 16 hex."""
    return hashlib.sha256(public_bytes(public)).hexdigest()[:16]


def public_bytes(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_text(public: Ed25519PublicKey) -> str:
    """The form pinned in a config: base64 of the 32 raw bytes."""
    return base64.b64encode(public_bytes(public)).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A pinned key (base64 of 32 raw bytes); raises ``ValueError`` with a one-line reason."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("public_key is not base64 (paste the line `reachwatch keygen` printed)") from None
    if len(raw) != 32:
        raise ValueError(f"public_key is {len(raw)} bytes, an Ed25519 key is 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def generate_key() -> tuple[bytes, str]:
    """A new key pair: (private key as PEM PKCS#8, public key as pinned text)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, public_key_text(private.public_key())


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """The signing key from its PEM file content; raises ``ValueError`` with a one-line reason."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted PEM private key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 key (make one with `reachwatch keygen`)")
    return key


def new_nonce() -> str:
    return base64.urlsafe_b64encode(os.urandom(18)).decode("ascii")


# --- the reference's side ----------------------------------------------------------------------------


def observation_entry(view: TargetView) -> dict[str, Any] | None:
    """One published observation, or ``None`` for a target without an attempt yet."""
    last = view.last
    if last is None:
        return None
    return {
        "name": view.name,
        "kind": view.kind,
        "destination": view.destination,
        "observed_at": last.started_at,
        "success": last.success,
        "failure": last.failure.value if last.failure else None,
        "stage": last.stage.value if last.stage else None,
        "stage_durations": {k: round(v, 6) for k, v in last.stage_durations.items()},
        "facts": dict(last.facts),
    }


def build_envelope(
    entries: list[dict[str, Any]],
    *,
    vantage: str,
    nonce: str | None,
    key: Ed25519PrivateKey | None,
    now: float | None = None,
) -> bytes:
    """The v2 answer over ``observation_entry`` dicts: payload JSON text, signed when there is a key."""
    payload = json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "vantage": vantage,
            "generated_at": time.time() if now is None else now,
            "nonce": nonce,
            "observations": entries,
        },
        separators=(",", ":"),
        allow_nan=False,
    )
    envelope: dict[str, Any] = {"version": VERSION, "payload": payload, "key_id": None, "signature": None}
    if key is not None:
        envelope["key_id"] = key_id(key.public_key())
        signature = key.sign(SIGNED_PREFIX + payload.encode("utf-8"))
        envelope["signature"] = base64.b64encode(signature).decode("ascii")
    return json.dumps(envelope, separators=(",", ":")).encode("utf-8")


# --- the client's side --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """A parsed v2 answer: observations by name and by destination, and whether a pinned key signed it."""

    by_name: dict[str, Observation]
    by_destination: dict[str, list[Observation]]
    signed: bool


def open_envelope(
    body: bytes, *, reference: str, pinned: Ed25519PublicKey | None, nonce: str | None
) -> Answer:
    """Check and parse a v2 answer; raises ``SignatureRejected`` or ``ProtocolError``.

    With a pinned key the signature must verify over the exact payload text and the payload must echo
    ``nonce``; without one, a signature is not checked (there is nothing to check it against) and the
    answer counts as unsigned.
    """
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"malformed answer: {type(exc).__name__}") from None
    if not isinstance(envelope, dict) or envelope.get("version") != VERSION:
        raise ProtocolError("not a v2 observations envelope")
    payload = envelope.get("payload")
    if not isinstance(payload, str):
        raise ProtocolError("no payload text")
    if pinned is not None:
        _verify(envelope.get("signature"), payload, pinned)
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"malformed payload: {type(exc).__name__}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or not isinstance(doc.get("observations"), list)
    ):
        raise ProtocolError("payload is not an observations document")
    if pinned is not None and doc.get("nonce") != nonce:
        raise SignatureRejected("signed answer does not echo our nonce (a replayed answer)")
    by_name: dict[str, Observation] = {}
    by_destination: dict[str, list[Observation]] = {}
    for item in doc["observations"]:
        seen = _observation(item, reference, signed=pinned is not None)
        if seen is None:
            continue
        by_name[seen.target] = seen
        if seen.destination is not None:
            by_destination.setdefault(seen.destination, []).append(seen)
    return Answer(by_name, by_destination, signed=pinned is not None)


def _verify(signature: Any, payload: str, pinned: Ed25519PublicKey) -> None:
    if signature is None:
        raise SignatureRejected("unsigned answer from a reference with a pinned key")
    if not isinstance(signature, str):
        raise SignatureRejected("signature is not text")
    try:
        raw = base64.b64decode(signature, validate=True)
        pinned.verify(raw, SIGNED_PREFIX + payload.encode("utf-8"))
    except (binascii.Error, ValueError, InvalidSignature):
        raise SignatureRejected("signature does not verify with the pinned key (a forged answer)") from None


def _observation(item: Any, reference: str, *, signed: bool) -> Observation | None:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return None
    return observation_from_last(
        {**item, "started_at": item.get("observed_at")},
        item["name"],
        reference,
        destination=item.get("destination"),
        kind=item.get("kind"),
        version=VERSION,
        signed=signed,
    )


# --- v1: /api/v1/status, by name, unsigned --------------------------------------------------------------


def parse_status(data: Any, reference: str = "reference") -> dict[str, Observation]:
    """Target name -> the latest attempt from a ``/api/v1/status`` document; raises ``ValueError``.

    Targets without a ``last`` attempt are skipped, and so are attempts without a finite time or a
    boolean success; a document that is not the status shape is an error. Failure and stage values this
    version does not know become ``None``; facts are kept only in a fact's shape and size
    (``model.bounded_facts``).
    """
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        raise ValueError("no 'targets' list")
    latest: dict[str, Observation] = {}
    for item in data["targets"]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        last = item.get("last")
        if not isinstance(last, dict):
            continue
        observation = observation_from_last(last, item["name"], reference)
        if observation is not None:
            latest[item["name"]] = observation
    return latest


def observation_from_last(
    last: dict[str, Any],
    name: str,
    reference: str,
    *,
    destination: Any = None,
    kind: Any = None,
    version: int = 1,
    signed: bool = False,
) -> Observation | None:
    """One attempt as a reference reported it (a v1 ``last`` or a v2 observation), or ``None`` when it
    lacks a finite time or a boolean success."""
    started_at, success = last.get("started_at"), last.get("success")
    if (
        not isinstance(started_at, int | float)
        or isinstance(started_at, bool)
        or not math.isfinite(started_at)
        or not isinstance(success, bool)
    ):
        return None
    durations = last.get("stage_durations")
    return Observation(
        reference=reference,
        target=name,
        observed_at=float(started_at),
        success=success,
        failure=_FAILURES.get(str(last.get("failure"))),
        stage=_STAGES.get(str(last.get("stage"))),
        facts=bounded_facts(last.get("facts")),
        stage_durations={
            k: float(v)
            for k, v in (durations.items() if isinstance(durations, dict) else ())
            if k in _STAGES and _finite(v)
        },
        destination=destination if isinstance(destination, str) and len(destination) <= 300 else None,
        kind=kind if isinstance(kind, str) and len(kind) <= 64 else None,
        version=version,
        signed=signed,
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_FAILURES = {f.value: f for f in Failure}
_STAGES = {s.value: s for s in Stage}


