"""The tcp probe against real listeners on 127.0.0.1: open, closed, and SYN-dropping ports."""

from __future__ import annotations

import time

import pytest

from reachwatch.config.targets.socks5 import Socks5Target
from reachwatch.config.targets.tcp import TcpTarget
from reachwatch.config.targets.tls import TlsTarget
from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.config.types import host_port, split_host_port
from reachwatch.failures import Failure, Stage
from tests.probes.util import run
from tests.servers import free_port, hold_open, syn_blackhole, tcp_server


async def test_listening_port_is_reachable_with_connect_timing() -> None:
    async with tcp_server(hold_open) as port:
        result = await run({"kind": "tcp", "host": "127.0.0.1", "port": port})
    assert result.success, result
    assert result.facts["ip"] == "127.0.0.1"
    assert set(result.stage_durations) == {"resolve", "connect"}


async def test_closed_port_is_connection_refused_at_connect() -> None:
    result = await run({"kind": "tcp", "host": "127.0.0.1", "port": free_port()})
    assert (result.failure, result.stage) == (Failure.CONNECTION_REFUSED, Stage.CONNECT)


async def test_unanswered_syn_times_out_at_connect_within_the_deadline() -> None:
    with syn_blackhole() as port:
        start = time.monotonic()
        result = await run({"kind": "tcp", "host": "127.0.0.1", "port": port}, timeout=1.0)
        elapsed = time.monotonic() - start
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.CONNECT)
    assert elapsed < 1.0 + 0.5


async def test_private_target_keeps_its_address_out_of_facts() -> None:
    async with tcp_server(hold_open) as port:
        result = await run({"kind": "tcp", "host": "127.0.0.1", "port": port, "private": True})
    assert result.success
    assert "ip" not in result.facts


@pytest.mark.parametrize("host", ["2001:db8::1", "[2001:db8::1]"])
def test_every_kind_spells_one_ipv6_endpoint_the_same_way(host: str) -> None:
    """Per-destination limits key on ``destination()``: tcp, tls and a proxy at one address must meet."""
    common = {"name": "x", "host": host, "port": 443}
    spellings = {
        TcpTarget.model_validate({**common, "kind": "tcp"}).destination(),
        TlsTarget.model_validate({**common, "kind": "tls"}).destination(),
        Socks5Target.model_validate({**common, "kind": "socks5"}).destination(),
        TorRelayTarget.model_validate({**common, "kind": "tor_relay", "fingerprint": "A" * 40}).destination(),
    }
    assert spellings == {"[2001:db8::1]:443"}
    assert host_port("a.test", 80) == "a.test:80"


@pytest.mark.parametrize("value", ["a.test:80", "[2001:db8::1]:443", "192.0.2.1:65535"])
def test_split_host_port_inverts_host_port(value: str) -> None:
    assert host_port(*split_host_port(value)) == value


@pytest.mark.parametrize("value", ["a.test", ":80", "[]:80", "a.test:0", "a.test:65536", "a.test:http"])
def test_split_host_port_refuses_what_is_not_an_endpoint(value: str) -> None:
    with pytest.raises(ValueError, match="not host:port"):
        split_host_port(value)
