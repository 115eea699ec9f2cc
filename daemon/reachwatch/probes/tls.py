"""``tls``: does a TLS handshake with the expected server complete, and if not, who answered instead?

Stages: resolve -> connect -> tls_handshake. Success means OpenSSL validated the chain for the SNI name
(system roots, or ``ca_file``) and every configured pin matched. On a validation failure the probe names
the presented issuer (fact ``tls_issuer``) so a national interception root is visible on dashboards; see
``net.tls`` for why that takes one diagnostic unverified handshake.

Local evidence:
- ``tls_interception``: a pin is configured and the presented key/certificate differs, or the presented
  chain names a known national interception root (``net.tls.KNOWN_INTERCEPTION_ROOTS``). Any other root
  is attributed by the verdict engine: the refused chain's leaf (fact ``tls_leaf_sha256``) differs from
  the one a reference vantage validated for the same name (``verdict.intercepted``);
- ``tls_interference``: the handshake timed out or was reset, and ONE diagnostic handshake to the same
  IP with ``neutral_sni`` completed: the block keys on the name in the ClientHello (Kazakhstan's usual
  method), not on the address.

``handshake_with_evidence`` is shared with the https, DoH, throughput and openconnect probes so every
TLS step in reachwatch reports interception the same way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from reachwatch.config.targets.tls import TlsOptions, TlsTarget
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.model import ProbeResult
from reachwatch.net.dial import connect_tcp
from reachwatch.net.errors import NetFailure
from reachwatch.net.tls import (
    PresentedChain,
    TlsSession,
    check_pins,
    client_context,
    discard,
    read_presented_chain,
    tls_handshake,
)
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp

_VERIFY_FAILURES = {
    Failure.SSL_UNKNOWN_AUTHORITY,
    Failure.SSL_INVALID_HOSTNAME,
    Failure.SSL_INVALID_CERTIFICATE,
}
_INTERFERENCE_FAILURES = {
    Failure.GENERIC_TIMEOUT_ERROR,
    Failure.CONNECTION_RESET,
    Failure.EOF_ERROR,
}


def record_issuer(ctx: ProbeContext, chain: PresentedChain) -> str | None:
    """Name the presented issuer; return the known interception root it matched, if any.

    A national root name identifies the censor, not the target, so it is recorded even for private
    targets; any other issuer (a private CA's name) is identifying and goes through ``public_fact``.
    """
    root = chain.interception_root()
    if root is not None:
        ctx.fact("tls_issuer", root)
    elif chain.top_issuer:
        ctx.public_fact("tls_issuer", chain.top_issuer)
    if chain.leaf_issuer:
        ctx.public_fact("tls_leaf_issuer", chain.leaf_issuer)
    return root


async def handshake_with_evidence(
    ctx: ProbeContext,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    ip: str,
    port: int,
    server_name: str | None,
    opts: TlsOptions,
    alpn: tuple[str, ...] = (),
    handshake_timeout: float | None = None,
) -> TlsSession:
    """Verified handshake; on a certificate or pin failure, record the issuer and interception evidence.

    Raises the classified ``NetFailure`` (with ``ctx.evidence`` set when warranted) so the runner reports
    it at ``tls_handshake``.
    """
    ca_file = Path(opts.ca_file) if opts.ca_file else None
    if ca_file is not None and not ca_file.is_absolute():
        ca_file = ctx.base_dir / ca_file
    context = client_context(ca_file=ca_file, verify=opts.verify, alpn=alpn)
    try:
        session = await tls_handshake(
            reader, writer, server_name, context, handshake_timeout=handshake_timeout
        )
    except NetFailure as exc:
        if exc.failure in _VERIFY_FAILURES:
            await _diagnose_refused_chain(ctx, ip, port, server_name, opts)
        raise
    ctx.fact("tls_version", session.version)
    ctx.public_fact("tls_subject", session.chain.leaf_subject)
    # the leaf this vantage was shown (a hash of the DER: no parsing on the success path): a reference
    # that validated a different leaf for the same name while ours failed is interception, whatever root
    ctx.public_fact("tls_leaf_sha256", session.chain.leaf_sha256())
    try:
        check_pins(session.chain, opts.spki_sha256, opts.cert_sha256, session.verified)
    except NetFailure:
        record_issuer(ctx, session.chain)
        ctx.mark_evidence(Technique.TLS_INTERCEPTION)
        raise
    return session


async def _diagnose_refused_chain(
    ctx: ProbeContext, ip: str, port: int, server_name: str | None, opts: TlsOptions
) -> None:
    try:
        async with asyncio.timeout(ctx.remaining() * 0.9):
            chain = await read_presented_chain(ip, port, server_name)
    except (NetFailure, TimeoutError):
        ctx.fact("tls_issuer_unavailable", True)
        return
    root = record_issuer(ctx, chain)
    ctx.public_fact("tls_leaf_sha256", chain.leaf_sha256())
    pin_differs = False
    if opts.pinned():
        try:
            check_pins(chain, opts.spki_sha256, opts.cert_sha256)
        except NetFailure:
            pin_differs = True
    if root is not None or pin_differs:
        ctx.mark_evidence(Technique.TLS_INTERCEPTION)


async def _neutral_handshake_completes(ctx: ProbeContext, ip: str, port: int, neutral_sni: str) -> bool:
    """One unverified handshake to the same IP with a harmless SNI; True when it completes."""
    try:
        async with asyncio.timeout(ctx.remaining() * 0.9):
            reader, writer = await connect_tcp(ip, port)
            try:
                await tls_handshake(reader, writer, neutral_sni, client_context(verify=False))
            finally:
                discard(writer)
    except (NetFailure, TimeoutError):
        return False
    return True


async def probe(target: TlsTarget, ctx: ProbeContext) -> ProbeResult:
    ip, reader, writer = await open_tcp(ctx, target.host, target.port)
    timeout = target.handshake_timeout
    if timeout is None and target.neutral_sni:
        timeout = ctx.remaining() / 2
    try:
        with ctx.stage(Stage.TLS_HANDSHAKE):
            await handshake_with_evidence(
                ctx,
                reader,
                writer,
                ip=ip,
                port=target.port,
                server_name=target.sni(),
                opts=target,
                handshake_timeout=timeout,
            )
    except NetFailure as exc:
        if not (target.neutral_sni and exc.failure in _INTERFERENCE_FAILURES):
            raise
        neutral_ok = await _neutral_handshake_completes(ctx, ip, target.port, target.neutral_sni)
        ctx.fact("neutral_sni_handshake", neutral_ok)
        return ctx.fail(
            exc.failure, Stage.TLS_HANDSHAKE, evidence=Technique.TLS_INTERFERENCE if neutral_ok else None
        )
    finally:
        discard(writer)
    return ctx.succeed()


SPEC = ProbeSpec(
    kind="tls",
    target_model=TlsTarget,
    probe=probe,
    description="TLS handshake with SNI; names the issuer of a refused chain",
)
