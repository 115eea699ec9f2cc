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
(``reachwatch.metrics.relaysets``) can count per set and flag without per-relay series.
"""

from __future__ import annotations

from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.config.tor_identity import decode_ed25519_identity
from reachwatch.failures import Failure, Stage, Technique
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
            # the Ed25519 chain only when there is an Ed25519 identity to compare it with (a relay set's
            # members have none): the RSA identity is proven by the link certificate alone
            identity = verify_identity(link, ed25519=target.ed25519_identity is not None)
        except TlsNotBound:
            # the relay's own certificates arrived through a TLS connection that is not the relay's:
            # local evidence of interception (a wrong fingerprint alone is not: relays re-key and move)
            ctx.mark_evidence(Technique.TLS_INTERCEPTION)
            raise
    ctx.fact("tor_ed25519_identity_present", identity.ed25519_present)
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
