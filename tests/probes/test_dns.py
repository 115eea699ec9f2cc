"""The dns probe against real dnsmasq resolvers on 127.0.0.1 and a local DoH endpoint.

Two dnsmasq instances play the two sides: ``isp`` is the untrusted resolver a censor controls (plain UDP,
poisoned answers), ``truth`` sits behind a DoH endpoint (aiohttp over TLS) and answers honestly.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from reachwatch.config.targets.dns import DnsTarget
from reachwatch.failures import Failure, Stage, Technique
from tests.probes.util import run
from tests.servers import dnsmasq, doh_server, free_port, server_context

REAL = "93.184.216.34"
ELSEWHERE = "151.101.1.69"
SINKHOLE = "10.10.34.35"


@dataclass
class Resolvers:
    isp: int
    doh: int
    ca_file: Path


@pytest.fixture
async def resolvers(ca: trustme.CA, ca_file: Path) -> AsyncIterator[Resolvers]:
    isp_answers = {"good.test": REAL, "sunk.test": SINKHOLE, "moved.test": ELSEWHERE}
    truth_answers = {"good.test": REAL, "sunk.test": REAL, "moved.test": REAL, "nx.test": REAL}
    async with (
        dnsmasq(isp_answers, nxdomain=("nx.test", "gone.test")) as isp,
        dnsmasq(truth_answers, nxdomain=("gone.test",)) as truth,
        doh_server(truth, server_context(ca, "doh.test")) as doh,
    ):
        yield Resolvers(isp, doh, ca_file)


def target(r: Resolvers, query: str, **extra: object) -> dict[str, object]:
    return {
        "kind": "dns",
        "query": query,
        "system": False,
        "resolvers": [
            {"name": "isp", "udp": f"127.0.0.1:{r.isp}"},
            {
                "name": "doh",
                "doh": f"https://doh.test:{r.doh}/dns-query",
                "address": "127.0.0.1",
                "tls": {"ca_file": str(r.ca_file)},
            },
        ],
        **extra,
    }


async def test_agreeing_resolvers_succeed_and_report_answers(resolvers: Resolvers) -> None:
    result = await run(target(resolvers, "good.test"))
    assert result.success, result
    assert result.facts["answers_isp"] == [REAL]
    assert result.facts["answers_doh"] == [REAL]
    assert result.facts["resolver_isp"] == "ok"


async def test_bogon_from_untrusted_resolver_is_tampering(resolvers: Resolvers) -> None:
    result = await run(target(resolvers, "sunk.test"))
    assert (result.failure, result.stage) == (Failure.DNS_BOGON_ERROR, Stage.RESOLVE)
    assert result.evidence is Technique.DNS_TAMPERING


async def test_bogon_in_an_exempt_network_is_only_a_mismatch_check(resolvers: Resolvers) -> None:
    result = await run(target(resolvers, "sunk.test", bogon_exempt=["10.0.0.0/8"], compare_answers=False))
    assert result.success, result


async def test_nxdomain_while_doh_answers_is_tampering(resolvers: Resolvers) -> None:
    result = await run(target(resolvers, "nx.test"))
    assert (result.failure, result.stage) == (Failure.DNS_NXDOMAIN_ERROR, Stage.RESOLVE)
    assert result.evidence is Technique.DNS_TAMPERING
    assert result.facts["resolver_doh"] == "ok"


async def test_nxdomain_everywhere_is_not_tampering(resolvers: Resolvers) -> None:
    result = await run(target(resolvers, "gone.test"))
    assert (result.failure, result.stage) == (Failure.DNS_NXDOMAIN_ERROR, Stage.RESOLVE)
    assert result.evidence is None


async def test_disjoint_public_answers_are_a_mismatch_unless_comparison_is_off(resolvers: Resolvers) -> None:
    compared = await run(target(resolvers, "moved.test"))
    not_compared = await run(target(resolvers, "moved.test", compare_answers=False))
    assert (compared.failure, compared.evidence) == (Failure.DNS_ANSWER_MISMATCH, Technique.DNS_TAMPERING)
    assert not_compared.success


async def test_refused_is_classified(resolvers: Resolvers) -> None:
    result = await run(
        {
            "kind": "dns",
            "query": "unknown.test",
            "system": False,
            "resolvers": [{"name": "isp", "udp": f"127.0.0.1:{resolvers.isp}"}],
        }
    )
    assert (result.failure, result.stage) == (Failure.DNS_REFUSED_ERROR, Stage.RESOLVE)


async def test_silent_resolver_times_out_within_deadline_and_others_still_report(
    resolvers: Resolvers,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, so no ICMP unreachable: queries just vanish
        data = target(resolvers, "good.test")
        data["resolvers"] = [
            *data["resolvers"],
            {"name": "dead", "udp": f"127.0.0.1:{silent.getsockname()[1]}"},
        ]  # type: ignore[list-item]
        result = await run(data, timeout=1.5)
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.RESOLVE)
    assert result.facts["resolver_dead"] == "generic_timeout_error"
    assert result.facts["resolver_doh"] == "ok"
    assert result.duration_s < 1.5


async def test_closed_resolver_port_is_connection_refused(resolvers: Resolvers) -> None:
    result = await run(
        {
            "kind": "dns",
            "query": "good.test",
            "system": False,
            "resolvers": [{"name": "x", "udp": f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"}],
        }
    )
    assert (result.failure, result.stage) == (Failure.CONNECTION_REFUSED, Stage.RESOLVE)


async def test_system_resolver_answer_in_loopback_is_a_bogon() -> None:
    result = await run({"kind": "dns", "query": "localhost"})
    assert (result.failure, result.evidence) == (Failure.DNS_BOGON_ERROR, Technique.DNS_TAMPERING)
    assert result.facts["answers_system"] == ["127.0.0.1"]


async def test_private_target_keeps_answers_out_of_facts(resolvers: Resolvers) -> None:
    result = await run(target(resolvers, "good.test", private=True))
    assert result.success
    assert not any(key.startswith("answers_") for key in result.facts)


def test_sensitive_values_cover_the_name_and_every_resolver() -> None:
    model = DnsTarget.model_validate(
        {
            "name": "d",
            "kind": "dns",
            "query": "secret.test",
            "resolvers": [
                {"name": "a", "udp": "[2001:db8::1]:5353"},
                {"name": "b", "doh": "https://doh.example/dns-query", "address": "192.0.2.1"},
            ],
        }
    )
    assert {"secret.test", "2001:db8::1", "doh.example", "192.0.2.1"} <= set(model.sensitive_values())


@pytest.mark.parametrize(
    ("resolver", "message"),
    [
        ({"name": "a"}, "exactly one of udp or doh"),
        ({"name": "a", "udp": "dns.example"}, "use ip, ip:port"),
        ({"name": "a", "doh": "http://x.test/dns-query"}, "https://"),
        ({"name": "system", "udp": "127.0.0.1"}, "not 'system'"),
    ],
)
def test_invalid_resolvers_are_refused(resolver: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DnsTarget.model_validate({"name": "d", "kind": "dns", "query": "x.test", "resolvers": [resolver]})
