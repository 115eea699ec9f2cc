"""The port survey against a real ``reachwatch canary`` on 127.0.0.1: open, closed and filtered ports of
both transports, an impostor, a redirect, another secret, pacing, and UDP replies from the address asked.

The censored network (a port-whitelist shutdown in network namespaces, the daemon, the canary process)
is ``tests/core/test_port_survey_netns.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from tests.canarylab import free_ports, running_canary, secret_file
from tests.probes.util import run
from tests.proxy.conftest import liar
from tests.servers import LOOPBACK, blackhole, free_port, tcp_server


def _ping_allowed() -> bool:
    low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    return any(low <= gid <= high for gid in {os.getgid(), *os.getgroups()})


async def survey(tmp: Path, *, timeout: float = 20.0, **fields: Any) -> ProbeResult:
    target = {
        "kind": "port_survey",
        "host": LOOPBACK,
        "secret_file": str(secret_file(tmp)),
        "tcp_ports": [],
        "udp_ports": [],
        "icmp": False,
        "port_timeout": "1s",
        "rate": 200,
        **fields,
    }
    return await run(target, timeout=timeout, base_dir=tmp)


@asynccontextmanager
async def silent_udp() -> AsyncIterator[int]:
    """A UDP port that receives and never answers (what a censor's drop looks like from here)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@asynccontextmanager
async def relay(to_port: int) -> AsyncIterator[int]:
    """A TCP port forwarded to ``to_port``: what a censor's redirect of every port to one looks like."""

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(4096):
                dst.write(data)
                await dst.drain()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(LOOPBACK, to_port)
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()

    async with tcp_server(handle) as port:
        yield port


async def test_each_port_is_open_closed_or_filtered_by_what_answered(tmp_path: Path) -> None:
    tcp_open = free_ports(2)
    (udp_open,) = free_ports(1, socket.SOCK_DGRAM)
    async with (
        running_canary(tmp_path, tcp_open, [udp_open]),
        tcp_server(blackhole) as tcp_silent,
        silent_udp() as udp_silent,
    ):
        tcp_closed, udp_closed = free_port(), free_port(socket.SOCK_DGRAM)
        result = await survey(
            tmp_path,
            tcp_ports=[*tcp_open, tcp_closed, tcp_silent],
            udp_ports=[udp_open, udp_closed, udp_silent],
            icmp=True,
        )
    assert result.success, result
    facts = result.facts
    assert facts["ports_open"] == [*(f"{p}/tcp" for p in tcp_open), f"{udp_open}/udp"] + (
        ["icmp"] if _ping_allowed() else []
    )
    assert sorted(facts["ports_closed"]) == sorted([f"{tcp_closed}/tcp", f"{udp_closed}/udp"])
    assert sorted(facts["ports_filtered"]) == sorted([f"{tcp_silent}/tcp", f"{udp_silent}/udp"])
    assert facts["ports_untested"] == ([] if _ping_allowed() else ["icmp"])
    failures = set(facts["port_failures"])
    assert f"{tcp_closed}/tcp:connect:connection_refused" in failures
    assert f"{udp_closed}/udp:protocol_handshake:connection_refused" in failures  # ICMP port unreachable
    assert f"{tcp_silent}/tcp:protocol_handshake:generic_timeout_error" in failures
    assert f"{udp_silent}/udp:protocol_handshake:generic_timeout_error" in failures
    if not _ping_allowed():
        assert "icmp:connect:permission_denied" in failures


async def test_an_impostor_a_redirect_and_another_secret_are_closed_not_open(tmp_path: Path) -> None:
    (canary_port,) = free_ports(1)
    async with (
        running_canary(tmp_path, [canary_port], []),
        relay(canary_port) as redirected,
        tcp_server(liar) as impostor,
    ):
        result = await survey(tmp_path, tcp_ports=[redirected, impostor])
        other = tmp_path / "other"
        other.mkdir()
        wrong = await survey(
            tmp_path,
            tcp_ports=[canary_port],
            secret_file=str(secret_file(other, content="a different secret, 16+ chars")),
        )
    assert not result.success
    assert (result.failure, result.stage) == (Failure.CANARY_MISMATCH, Stage.PROTOCOL_HANDSHAKE)
    assert result.facts["ports_open"] == []
    assert result.facts["ports_redirected"] == [f"{redirected}/tcp"]  # the canary said: port {canary_port}
    assert sorted(result.facts["ports_closed"]) == sorted([f"{redirected}/tcp", f"{impostor}/tcp"])
    # the canary stays silent to a request it cannot verify and closes: an end of stream, never "open"
    assert (wrong.failure, wrong.stage) == (Failure.EOF_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert wrong.facts["ports_closed"] == [f"{canary_port}/tcp"]


async def test_packets_are_paced_at_the_configured_rate(tmp_path: Path) -> None:
    ports = free_ports(6)
    async with running_canary(tmp_path, ports, []) as canary:
        start = time.monotonic()
        result = await survey(tmp_path, tcp_ports=ports, rate=10, parallel=6)
        elapsed = time.monotonic() - start
        answered = canary.counters.requests[("tcp", "answered")]
    assert result.facts["ports_open"] == [f"{p}/tcp" for p in ports]
    assert answered == 6
    assert elapsed >= 0.5 - 0.02  # six packets 100 ms apart, however many ports run at once


async def test_a_udp_reply_leaves_from_the_address_the_request_was_sent_to(tmp_path: Path) -> None:
    """A canary on a wildcard address of a host with several: the prober's connected socket drops a
    reply from another address, so without IP_PKTINFO every UDP port would look filtered."""
    (port,) = free_ports(1, socket.SOCK_DGRAM)
    async with running_canary(tmp_path, [], [port], addresses=("0.0.0.0",)):
        result = await survey(tmp_path, host="127.0.0.2", udp_ports=[port])
    assert result.facts["ports_open"] == [f"{port}/udp"], result.facts


async def test_ports_the_deadline_leaves_no_time_for_are_untested(tmp_path: Path) -> None:
    async with tcp_server(blackhole) as first, tcp_server(blackhole) as second:
        result = await survey(tmp_path, tcp_ports=[first, second], parallel=1, timeout=1.2)
    # one port waits out its second (less the margin), the other finds no time left
    assert len(result.facts["ports_filtered"]) == 1
    assert len(result.facts["ports_untested"]) == 1
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert result.duration_s < 1.2
