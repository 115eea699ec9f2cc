"""net.dns: bogon ranges and reply parsing (garbage and replies to another query are misbehaviour)."""

from __future__ import annotations

import dns.message
import dns.rrset
import pytest

from reachwatch.failures import Failure
from reachwatch.net.dns import DnsAnswer, is_bogon, make_query, parse_reply
from reachwatch.net.errors import NetFailure


@pytest.mark.parametrize(
    ("address", "bogon"),
    [
        ("10.10.34.35", True),
        ("127.0.0.1", True),
        ("0.0.0.0", True),
        ("100.64.1.1", True),
        ("169.254.1.1", True),
        ("224.0.0.1", True),
        ("::1", True),
        ("::ffff:192.168.1.1", True),
        ("fd00::1", True),
        ("93.184.216.34", False),
        ("2606:4700::1111", False),
    ],
)
def test_bogon_ranges(address: str, bogon: bool) -> None:
    assert is_bogon(address) is bogon


def test_reply_addresses_of_the_asked_type_only() -> None:
    query = make_query("a.test", "A")
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text("a.test.", 60, "IN", "CNAME", "b.test."))
    reply.answer.append(dns.rrset.from_text("b.test.", 60, "IN", "A", "93.184.216.34", "93.184.216.35"))
    answer = parse_reply(reply.to_wire(), query)
    assert answer.rcode == "NOERROR"
    assert sorted(answer.addresses) == ["93.184.216.34", "93.184.216.35"]  # an rrset has no order
    assert answer.failure() is None


def test_garbage_and_foreign_replies_are_server_misbehaving() -> None:
    query = make_query("a.test", "A")
    other = dns.message.make_response(make_query("b.test", "A"))
    for wire in (b"\x00\x01garbage", other.to_wire()):
        with pytest.raises(NetFailure) as err:
            parse_reply(wire, query)
        assert err.value.failure is Failure.DNS_SERVER_MISBEHAVING


@pytest.mark.parametrize(
    ("rcode", "failure"),
    [
        ("NXDOMAIN", Failure.DNS_NXDOMAIN_ERROR),
        ("SERVFAIL", Failure.DNS_SERVFAIL_ERROR),
        ("REFUSED", Failure.DNS_REFUSED_ERROR),
        ("NOTIMP", Failure.DNS_SERVER_MISBEHAVING),
        ("NOERROR", Failure.DNS_NO_ANSWER),
    ],
)
def test_rcodes_map_to_failures(rcode: str, failure: Failure) -> None:
    assert DnsAnswer(rcode, ()).failure() is failure
