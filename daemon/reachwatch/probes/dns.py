"""``dns``: does a name resolve, and do resolvers we cannot trust agree with one we can?

One query of ``query`` (type A or AAAA) to each of: the system resolver (``getaddrinfo``, what every
application here uses) and the configured ``resolvers`` (plain UDP ``ip[:port]``, or DoH: an RFC 8484 POST
over verified TLS to a pinned address). All run concurrently, each bounded, so one silent resolver
still leaves time to report the others. DoH resolvers are *trusted* by default (encrypted and
authenticated, so an on-path censor cannot rewrite them); UDP resolvers are not, unless configured so.

The primary answer is the system resolver's (or, with ``system: false``, the first resolver's). Local
evidence ``dns_tampering``, in this order:

1. the primary (or any untrusted resolver) says NXDOMAIN/SERVFAIL/REFUSED/no answer while a trusted
   resolver returns addresses;
2. an untrusted answer holds a bogon (``net.dns.is_bogon``) that no trusted resolver returned
   (``bogon_exempt`` lists networks that are legitimate here, e.g. split-horizon names);
3. with ``compare_answers``, an untrusted answer and a trusted one are disjoint, compared per /24 (IPv4)
   or /48 (IPv6). False-positive risk: CDNs and geo-DNS hand different resolvers different, unrelated
   addresses (the DoH resolver sees another client subnet than the ISP resolver); the prefix comparison
   absorbs the usual same-cluster spread but not CDN steering, so set ``compare_answers: false`` for
   CDN-hosted names and rely on rules 1-2 there.

Without evidence, the first failing resolver (system first, then configuration order) decides the
failure. Facts: ``resolver_<label>`` = ``ok`` or the failure, and ``answers_<label>`` (public targets
only); the system resolver's label is ``system``. A DoH resolver's TLS step is the ``tls`` probe's, so an
intercepted DoH connection also records ``tls_issuer`` and ``tls_interception`` evidence.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field

from reachwatch.config.targets.dns import DnsResolver, DnsTarget, split_resolver_address
from reachwatch.config.types import Url
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.model import ProbeResult
from reachwatch.net.dial import connect_tcp, pin_address, resolve
from reachwatch.net.dns import DnsAnswer, doh_query, is_bogon, udp_query
from reachwatch.net.errors import NetFailure
from reachwatch.net.tls import discard
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.probes.tls import handshake_with_evidence

# share of the remaining deadline each resolver may use; the rest is for classification and facts
QUERY_SHARE = 0.8
_RCODE_FAILURES = {
    Failure.DNS_NXDOMAIN_ERROR,
    Failure.DNS_SERVFAIL_ERROR,
    Failure.DNS_REFUSED_ERROR,
    Failure.DNS_NO_ANSWER,
}


@dataclass
class Outcome:
    """What one resolver said: its failure (``None`` for an answer) and the addresses it returned."""

    label: str
    trusted: bool
    failure: Failure | None = None
    stage: Stage = Stage.RESOLVE
    addresses: tuple[str, ...] = field(default_factory=tuple)


async def _ask_system(target: DnsTarget) -> DnsAnswer:
    family = socket.AF_INET if target.record_type == "A" else socket.AF_INET6
    return DnsAnswer("NOERROR", tuple(await resolve(target.query, family=family)))


async def _ask_doh(resolver: DnsResolver, target: DnsTarget, ctx: ProbeContext) -> DnsAnswer:
    assert resolver.doh is not None
    url = Url.parse(resolver.doh)
    ip = resolver.address or await pin_address(url.host)
    reader, writer = await connect_tcp(ip, url.port)
    try:
        sni = url.host  # an IP: verified against IP SANs, no SNI sent
        await handshake_with_evidence(
            ctx, reader, writer, ip=ip, port=url.port, server_name=sni, opts=resolver.tls, alpn=("http/1.1",)
        )
        return await doh_query(reader, writer, url, target.query, target.record_type)
    finally:
        discard(writer)


async def _ask(
    label: str, resolver: DnsResolver | None, target: DnsTarget, ctx: ProbeContext, budget: float
) -> Outcome:
    outcome = Outcome(label, trusted=resolver.is_trusted() if resolver else False)
    try:
        async with asyncio.timeout(budget):
            if resolver is None:
                answer = await _ask_system(target)
            elif resolver.udp is not None:
                host, port = split_resolver_address(resolver.udp, 53)
                answer = await udp_query(host, port, target.query, target.record_type)
            else:
                answer = await _ask_doh(resolver, target, ctx)
    except NetFailure as exc:
        outcome.failure, outcome.stage = exc.failure, exc.stage
        return outcome
    except TimeoutError:
        outcome.failure = Failure.GENERIC_TIMEOUT_ERROR
        return outcome
    outcome.failure = answer.failure()
    outcome.addresses = answer.addresses
    return outcome


def _prefix(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    ip = ipaddress.ip_address(address)
    return ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 48}", strict=False)


def classify(outcomes: list[Outcome], target: DnsTarget) -> tuple[Failure, Stage, Technique | None] | None:
    """The probe's verdict from all answers (rules in the module docstring); ``None`` means success."""
    exempt = [ipaddress.ip_network(n, strict=False) for n in target.bogon_exempt]
    trusted_addrs = {a for o in outcomes if o.trusted and o.failure is None for a in o.addresses}
    untrusted = [o for o in outcomes if not o.trusted]
    for o in untrusted:
        if o.failure in _RCODE_FAILURES and trusted_addrs:
            return o.failure, Stage.RESOLVE, Technique.DNS_TAMPERING
    for o in untrusted:
        bogons = [
            a
            for a in o.addresses
            if is_bogon(a)
            and a not in trusted_addrs
            and not any(ipaddress.ip_address(a) in n for n in exempt)
        ]
        if bogons:
            return Failure.DNS_BOGON_ERROR, Stage.RESOLVE, Technique.DNS_TAMPERING
    if target.compare_answers and trusted_addrs:
        trusted_prefixes = {_prefix(a) for a in trusted_addrs}
        for o in untrusted:
            if o.addresses and not trusted_prefixes.intersection(_prefix(a) for a in o.addresses):
                return Failure.DNS_ANSWER_MISMATCH, Stage.RESOLVE, Technique.DNS_TAMPERING
    for o in outcomes:
        if o.failure is not None:
            return o.failure, o.stage, None
    return None


async def probe(target: DnsTarget, ctx: ProbeContext) -> ProbeResult:
    budget = ctx.remaining() * QUERY_SHARE
    asks: list[tuple[str, DnsResolver | None]] = [(r.name, r) for r in target.resolvers]
    if target.system:
        asks.insert(0, ("system", None))
    with ctx.stage(Stage.RESOLVE):
        outcomes = list(await asyncio.gather(*(_ask(label, r, target, ctx, budget) for label, r in asks)))
    for o in outcomes:
        ctx.fact(f"resolver_{o.label}", o.failure.value if o.failure else "ok")
        if o.addresses:
            ctx.public_fact(f"answers_{o.label}", list(o.addresses))
    verdict = classify(outcomes, target)
    if verdict is None:
        return ctx.succeed()
    failure, stage, evidence = verdict
    return ctx.fail(failure, stage, evidence=evidence)


SPEC = ProbeSpec(
    kind="dns",
    target_model=DnsTarget,
    probe=probe,
    description="resolve a name via the system, UDP and DoH resolvers; flag tampering",
)
