"""The tunnel-usability stage: throughput through real tunnels, and a censor that cuts flows after N bytes.

The censor tests build a netlab (client ns "inside", router ns as the censor, server ns "abroad" running
microsocks and an echo canary) and run the real socks5 probe in the client namespace.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.failures import Failure, Stage
from reachwatch.net.dial import connect_tcp
from reachwatch.net.errors import NetFailure
from reachwatch.probes.base import ProbeContext
from reachwatch.vpn.canary import PlainStream, push_canary, verify_canary
from tests.netlab import SERVER_IP, Lab
from tests.proxy.conftest import CANARY_PORT, SOCKS_PORT, ClientProber, cut_after, echo_canary
from tests.servers import LOOPBACK, tcp_server


def ctx() -> ProbeContext:
    return ProbeContext(target="t", kind="test", timeout=5.0)


async def test_push_skipped_when_push_bytes_is_zero() -> None:
    async with echo_canary() as port:
        reader, writer = await connect_tcp(LOOPBACK, port)
        stream = PlainStream(reader, writer)
        c = ctx()
        await verify_canary(stream)
        await push_canary(stream, CanaryConfig(host=LOOPBACK, port=port, push_bytes=0), c)
        await stream.close()
    assert "transfer" not in c.stage_durations and "throughput_bps" not in c.facts


async def test_canary_that_closes_after_n_bytes_is_transfer_incomplete() -> None:
    async def close_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readexactly(10_000)
        writer.write(data)
        await writer.drain()
        writer.close()

    async with tcp_server(close_after) as port:
        reader, writer = await connect_tcp(LOOPBACK, port)
        stream = PlainStream(reader, writer)
        c = ctx()
        with pytest.raises(NetFailure) as info:
            await push_canary(stream, CanaryConfig(host=LOOPBACK, port=port, push_bytes=64 * 1024), c)
        await stream.close()
    assert (info.value.failure, info.value.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER)
    assert c.facts["transfer_bytes"] == 10_000


async def test_stall_is_detected_within_stall_timeout() -> None:
    async with tcp_server(cut_after(5_000)) as port:
        reader, writer = await connect_tcp(LOOPBACK, port)
        stream = PlainStream(reader, writer)
        start = time.monotonic()
        with pytest.raises(NetFailure) as info:
            await push_canary(
                stream,
                CanaryConfig(host=LOOPBACK, port=port, push_bytes=64 * 1024, stall_timeout=0.3),
                ctx(),
            )
        await stream.close()
    assert info.value.failure == Failure.TRANSFER_INCOMPLETE
    assert time.monotonic() - start < 2.0


async def test_corrupted_echo_is_canary_mismatch_not_a_cut() -> None:
    async def flip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(bytes(b ^ 1 for b in data))
            await writer.drain()

    async with tcp_server(flip) as port:
        reader, writer = await connect_tcp(LOOPBACK, port)
        stream = PlainStream(reader, writer)
        with pytest.raises(NetFailure) as info:
            await push_canary(stream, CanaryConfig(host=LOOPBACK, port=port, push_bytes=32 * 1024), ctx())
        await stream.close()
    assert (info.value.failure, info.value.stage) == (Failure.CANARY_MISMATCH, Stage.TRANSFER)


# -- the censor in a network namespace ------------------------------------------------------------------


SOCKS_TARGET = {
    "name": "socks-abroad",
    "host": SERVER_IP,
    "port": SOCKS_PORT,
    "canary": {"host": SERVER_IP, "port": CANARY_PORT, "push_bytes": 256 * 1024, "stall_timeout": "1s"},
}


@pytest.mark.root
@pytest.mark.slow
def test_censor_cutting_flows_after_20kb_is_seen_at_transfer_while_handshake_works(
    proxy_lab: Lab, prober: ClientProber
) -> None:
    lab = proxy_lab
    control = prober.probe("socks5", SOCKS_TARGET, 8)
    assert control.success, control  # same path, no rule: the full push gets through
    lab.censor(f"ip daddr {SERVER_IP} tcp dport {SOCKS_PORT} ct bytes > 20000 drop")
    result = prober.probe("socks5", SOCKS_TARGET, 8)
    assert (result.failure, result.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER)
    assert "protocol_handshake" in result.stage_durations and "tunnel" in result.stage_durations
    got = result.facts["transfer_bytes"]
    assert isinstance(got, int) and 0 < got < 20_000


@pytest.mark.root
@pytest.mark.slow
def test_throttled_path_gives_lower_throughput_than_unthrottled(proxy_lab: Lab, prober: ClientProber) -> None:
    lab = proxy_lab
    fast = prober.probe("socks5", SOCKS_TARGET, 8)
    lab.throttle(rate="2mbit", burst="16kb", latency="400ms")
    slow = prober.probe("socks5", SOCKS_TARGET, 8)
    assert fast.success and slow.success, (fast, slow)
    slow_bps = slow.facts["throughput_bps"]
    assert isinstance(slow_bps, float)
    assert slow_bps < 2_000_000 / 8 * 1.5  # never above the policed rate (+ burst slack)
    assert isinstance(fast.facts["throughput_bps"], float) and fast.facts["throughput_bps"] > 2 * slow_bps
