"""``tor_relay``: is this Tor relay's ORPort reachable from here, and is it really that relay?

Without a tor process: TCP (``connect``), TLS without certificate validation (``tls_handshake``; relay
certificates are self-signed by design), then Tor's link handshake (``protocol_handshake``): VERSIONS,
CERTS, AUTH_CHALLENGE, NETINFO. The CERTS cell must prove the configured RSA identity (and the Ed25519
identity when configured) *on this TLS connection*; see ``reachwatch.formats.tor_certs``.

Why the identity check: a bare TLS handshake (what OONI's ``or_port`` test does) succeeds against a
TLS-terminating middlebox or an impostor, which would count an intercepted relay as reachable. Here that
is ``tor_identity_mismatch``; a peer that does not speak the link protocol is ``tor_link_handshake_failed``.
When the relay's genuine certificates arrive bound to another TLS certificate (a TLS-terminating
middlebox relaying them), the mismatch also carries local evidence ``tls_interception``.

Relay-set membership (``relay_set``, ``relay_flags``) is carried on the target so the aggregate collector
(``reachwatch.tor.relaymetrics``) can count per set and flag without per-relay series.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.types import NAME_PATTERN, TargetBase, host_port
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.formats.tor_certs import decode_ed25519_identity, normalize_fingerprint
from reachwatch.model import ProbeResult
from reachwatch.net.tls import discard, tls_handshake
from reachwatch.net.torlink import (
    TlsNotBound,
    link_handshake,
    link_tls_context,
    random_sni,
    verify_identity,
)
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp


class TorRelayTarget(TargetBase):
    """A relay's ORPort and the identity it must prove."""

    kind: Literal["tor_relay"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    fingerprint: str  # RSA identity: "$HEX", "HEX" or "HEX HEX ..." (normalized to 40 upper-case hex)
    ed25519_identity: str | None = None  # base64, as in tor's fingerprint-ed25519 / consensus "id ed25519"
    # set by relay-set expansion (tor.relaysets); aggregate metrics group by these
    relay_set: str | None = Field(default=None, pattern=NAME_PATTERN)
    relay_flags: tuple[str, ...] = ()  # consensus flags (set by relay-set expansion, for aggregates)
    # False for relay-set members unless the set asks for per-relay series (cardinality)
    per_target_metrics: bool = True

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str) -> str:
        return normalize_fingerprint(value)

    @field_validator("ed25519_identity")
    @classmethod
    def _ed25519(cls, value: str | None) -> str | None:
        if value is not None:
            decode_ed25519_identity(value)
        return value

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def sensitive_values(self) -> list[str]:
        values = [*super().sensitive_values(), self.fingerprint]
        if self.ed25519_identity:
            values.append(self.ed25519_identity)
        return values


async def probe(target: TorRelayTarget, ctx: ProbeContext) -> ProbeResult:
    _, reader, writer = await open_tcp(ctx, target.host, target.port)
    try:
        with ctx.stage(Stage.TLS_HANDSHAKE):
            session = await tls_handshake(reader, writer, random_sni(), link_tls_context())
        ctx.fact("tls_version", session.version)
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            tls_cert = session.chain.der[0] if session.chain.der else b""
            link = await link_handshake(session.reader, session.writer, tls_cert)
    finally:
        discard(writer)  # no graceful close: a tarpit must not hold the attempt past its deadline
    ctx.fact("tor_link_version", link.link_version)
    if link.clock_skew_s is not None:
        ctx.fact("tor_clock_skew_seconds", link.clock_skew_s)
    with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
        try:
            identity = verify_identity(link)
        except TlsNotBound:
            # the relay's own certificates arrived through a TLS connection that is not the relay's:
            # local evidence of interception (a wrong fingerprint alone is not: relays re-key and move)
            ctx.mark_evidence(Technique.TLS_INTERCEPTION)
            raise
    ctx.fact("tor_ed25519_identity_present", identity.ed25519_identity is not None)
    if identity.rsa_fingerprint != target.fingerprint:
        return ctx.fail(Failure.TOR_IDENTITY_MISMATCH, Stage.PROTOCOL_HANDSHAKE)
    if target.ed25519_identity is not None and identity.ed25519_identity != decode_ed25519_identity(
        target.ed25519_identity
    ):
        return ctx.fail(Failure.TOR_IDENTITY_MISMATCH, Stage.PROTOCOL_HANDSHAKE)
    return ctx.succeed()


SPEC = ProbeSpec(
    kind="tor_relay",
    target_model=TorRelayTarget,
    probe=probe,
    description="Tor ORPort: TLS + link handshake, relay identity verified from CERTS",
)
