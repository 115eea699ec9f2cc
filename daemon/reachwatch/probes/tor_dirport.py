"""``tor_dirport``: can this relay's (or directory authority's) DirPort serve a directory document?

We fetch ``/tor/server/authority``: the relay's own server descriptor (dir-spec 4.2), about 2-3 KB. Why
that document: the consensus (``/tor/status-vote/current/consensus-microdesc``) is megabytes and would
make a gentle probe heavy; ``/tor/keys/authority`` is only served by authorities. The descriptor is
small, served by every DirPort, and *self-authenticating*: stem checks its signature and that the
signing key hashes to the fingerprint in it, so with ``fingerprint`` configured a censor's injected page
or a transparent proxy serving another relay's descriptor is ``tor_identity_mismatch``, not "reachable".

Stages: ``connect``, then ``http`` (request, bounded response, descriptor check).
"""

from __future__ import annotations

from stem.descriptor.server_descriptor import RelayDescriptor

from reachwatch.config.targets.tor_dirport import TorDirPortTarget
from reachwatch.config.types import Url
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.net.http import HttpExchange
from reachwatch.net.tls import discard
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp

DOCUMENT = "/tor/server/authority"
MAX_DESCRIPTOR_BYTES = 64 * 1024  # real descriptors are 2-3 KB (family lines can grow them)


async def probe(target: TorDirPortTarget, ctx: ProbeContext) -> ProbeResult:
    _, reader, writer = await open_tcp(ctx, target.host, target.port)
    exchange = HttpExchange(reader, writer)
    # DirPorts answer in HTTP/1.0 and close after the body; tor accepts our HTTP/1.1 request with
    # Connection: close. Host and Connection only: nothing that tells a DirPort (or DPI) who is asking.
    url = Url("http", target.host, target.port, DOCUMENT, target.destination())
    try:
        with ctx.stage(Stage.HTTP):
            await exchange.send_request("GET", url, defaults=())
            head = await exchange.read_head()
            status = head.status
            body = await exchange.read_whole_body(head, MAX_DESCRIPTOR_BYTES)
    finally:
        discard(writer)  # no graceful close: a tarpit must not hold the attempt past its deadline
    ctx.fact("http_status", status)
    ctx.fact("body_bytes", len(body))
    if status != 200:
        return ctx.fail(Failure.HTTP_UNEXPECTED_STATUS_CODE, Stage.HTTP)
    try:
        # validate=True: stem checks the signature and that the signing key hashes to the fingerprint
        descriptor = RelayDescriptor(body, validate=True)
    except (ValueError, TypeError):
        return ctx.fail(Failure.HTTP_INVALID_RESPONSE, Stage.HTTP)
    if target.fingerprint is not None and (descriptor.fingerprint or "").upper() != target.fingerprint:
        return ctx.fail(Failure.TOR_IDENTITY_MISMATCH, Stage.HTTP)
    return ctx.succeed()


SPEC = ProbeSpec(
    kind="tor_dirport",
    target_model=TorDirPortTarget,
    probe=probe,
    description="Tor DirPort: fetch the relay's own signed descriptor and check its identity",
)
