"""DNS queries over plain UDP and over DoH (RFC 8484), and what an answer means.

dnspython is used for the wire format only (``dns.message``); the transports are ours (``net.udp``, and
``net.http`` over ``net.tls`` for DoH) so every read is bounded and every failure classified here:

- rcodes: NXDOMAIN -> ``dns_nxdomain_error``, SERVFAIL -> ``dns_servfail_error``, REFUSED ->
  ``dns_refused_error``, NOERROR without an address of the asked type -> ``dns_no_answer``, any other
  rcode or an unparsable reply -> ``dns_server_misbehaving``;
- ``is_bogon``: addresses no public name should resolve to (private, loopback, link-local, reserved,
  multicast, unspecified, shared/CGNAT): what a censor's resolver hands out to sink a name.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from reachwatch.config.types import Url
from reachwatch.failures import Failure, Stage
from reachwatch.net.errors import NetFailure
from reachwatch.net.http import HttpExchange
from reachwatch.net.udp import udp_exchange

DOH_CONTENT_TYPE = "application/dns-message"
MAX_DOH_BYTES = 65535  # the largest DNS message there is

_RCODE_FAILURES = {
    dns.rcode.NXDOMAIN: Failure.DNS_NXDOMAIN_ERROR,
    dns.rcode.SERVFAIL: Failure.DNS_SERVFAIL_ERROR,
    dns.rcode.REFUSED: Failure.DNS_REFUSED_ERROR,
}


@dataclass(frozen=True)
class DnsAnswer:
    """One resolver's reply: its rcode name and the addresses of the asked type, in answer order."""

    rcode: str
    addresses: tuple[str, ...]

    def failure(self) -> Failure | None:
        """The classified failure of this reply, ``None`` when it carries addresses."""
        code = dns.rcode.from_text(self.rcode)
        if code in _RCODE_FAILURES:
            return _RCODE_FAILURES[code]
        if code != dns.rcode.NOERROR:
            return Failure.DNS_SERVER_MISBEHAVING
        return None if self.addresses else Failure.DNS_NO_ANSWER


def is_bogon(address: str) -> bool:
    """True for addresses a public name should never resolve to."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )


def make_query(name: str, rdtype: str, *, doh: bool = False) -> dns.message.Message:
    """A recursive query for ``name``/``rdtype`` (random ID over UDP, ID 0 for DoH)."""
    query = dns.message.make_query(name, dns.rdatatype.from_text(rdtype))
    query.flags |= dns.flags.RD
    if doh:
        query.id = 0  # RFC 8484 4.1: ID 0 keeps DoH responses cache-friendly
    return query


def parse_reply(wire: bytes, query: dns.message.Message, stage: Stage = Stage.RESOLVE) -> DnsAnswer:
    """Parse a reply to ``query``; anything unparsable or not answering it is ``dns_server_misbehaving``."""
    try:
        reply = dns.message.from_wire(wire)
    except dns.exception.DNSException as exc:
        raise NetFailure(Failure.DNS_SERVER_MISBEHAVING, stage, f"unparsable reply: {exc}") from exc
    if not query.is_response(reply):
        raise NetFailure(Failure.DNS_SERVER_MISBEHAVING, stage, "reply does not answer the query")
    rdtype = query.question[0].rdtype
    addresses: list[str] = []
    for rrset in reply.answer:
        if rrset.rdtype != rdtype:
            continue  # CNAMEs and the like: the addresses are what a client would connect to
        for rdata in rrset:
            if rdata.address not in addresses:
                addresses.append(str(rdata.address))
    return DnsAnswer(dns.rcode.to_text(reply.rcode()), tuple(addresses))


def _answers(query: dns.message.Message) -> Callable[[bytes], bool]:
    def accept(wire: bytes) -> bool:
        try:
            return bool(query.is_response(dns.message.from_wire(wire)))
        except dns.exception.DNSException:
            return False  # garbage or a reply to someone else: keep waiting (bounded by net.udp)

    return accept


async def udp_query(ip: str, port: int, name: str, rdtype: str) -> DnsAnswer:
    """One query over UDP to ``ip:port``; bounded by the caller's deadline."""
    query = make_query(name, rdtype)
    accept = _answers(query)
    wire = await udp_exchange(ip, port, query.to_wire(), accept=accept, stage=Stage.RESOLVE)
    return parse_reply(wire, query)


async def doh_query(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: Url, name: str, rdtype: str
) -> DnsAnswer:
    """One RFC 8484 POST on an established (TLS) stream. Transport failures are at stage ``http``."""
    query = make_query(name, rdtype, doh=True)
    exchange = HttpExchange(reader, writer, stage=Stage.HTTP)
    await exchange.send_request(
        "POST",
        url,
        headers=[("Content-Type", DOH_CONTENT_TYPE), ("Accept", DOH_CONTENT_TYPE)],
        body=query.to_wire(),
    )
    response = await exchange.fetch(MAX_DOH_BYTES)
    if response.status != 200:
        raise NetFailure(Failure.DNS_SERVER_MISBEHAVING, Stage.RESOLVE, f"DoH status {response.status}")
    if not response.complete:
        raise NetFailure(Failure.DNS_SERVER_MISBEHAVING, Stage.RESOLVE, "DoH reply larger than a DNS message")
    return parse_reply(response.body, query)
