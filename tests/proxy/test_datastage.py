"""The data stage over a stream to the echo canary (``vpn.datastage`` + ``vpn.canary.StreamEcho``): the
volume, the flow's minimum lifetime, and the cut point when either is cut short; then a censor that cuts
flows after N bytes and a shaped link, in a network namespace, with the real socks5 probe.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.failures import Failure, Stage
from reachwatch.net.dial import connect_tcp
from reachwatch.net.errors import NetFailure
from reachwatch.probes.base import ProbeContext, ProbeSpec, run_probe
from reachwatch.vpn.canary import PlainStream, StreamEcho, verify_canary
from reachwatch.vpn.datastage import HOLD_BYTES, run_data_stage
from tests.netlab import SERVER_IP, Lab
from tests.proxy.conftest import CANARY_PORT, SOCKS_PORT, ClientProber, cut_after, echo_canary
from tests.servers import LOOPBACK, tcp_server


def ctx(timeout: float = 5.0) -> ProbeContext:
    return ProbeContext(target="t", kind="test", timeout=timeout)


async def stage_through(handler_port: int, config: DataStageConfig, c: ProbeContext) -> None:
    reader, writer = await connect_tcp(LOOPBACK, handler_port)
    stream = PlainStream(reader, writer)
    try:
        await run_data_stage(StreamEcho(stream), config, c)
    finally:
        await stream.close()


async def test_volume_then_lifetime_echoes_until_the_flow_lived_long_enough() -> None:
    c = ctx()
    async with echo_canary() as port:
        start = time.monotonic()
        await stage_through(port, DataStageConfig(volume=32 * 1024, min_lifetime=2.2), c)
    assert time.monotonic() - start >= 2.2
    # 32 KiB, then one echo a second until 2.2 s: at 1 s, 2 s and 2.2 s
    assert c.facts["bytes_moved"] == 32 * 1024 + 3 * HOLD_BYTES
    assert c.facts["transfer_goal_bytes"] == 32 * 1024
    assert isinstance(c.facts["flow_alive_s"], float) and c.facts["flow_alive_s"] >= 2.2
    assert isinstance(c.facts["throughput_bps"], float) and c.facts["throughput_bps"] > 0
    assert "cut_after_bytes" not in c.facts and "lifetime_clipped" not in c.facts


async def test_zero_volume_still_checks_the_lifetime_and_measures_no_throughput() -> None:
    c = ctx()
    async with echo_canary() as port:
        await stage_through(port, DataStageConfig(volume=0, min_lifetime=1.0), c)
    assert c.facts["bytes_moved"] == HOLD_BYTES
    assert "throughput_bps" not in c.facts


async def test_canary_that_closes_after_n_bytes_is_transfer_incomplete_with_the_cut_point() -> None:
    async def close_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readexactly(10_000)
        writer.write(data)
        await writer.drain()
        writer.close()

    c = ctx()
    async with tcp_server(close_after) as port:
        with pytest.raises(NetFailure) as info:
            await stage_through(port, DataStageConfig(volume=64 * 1024, min_lifetime=0), c)
    assert (info.value.failure, info.value.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER)
    assert c.facts["bytes_moved"] == c.facts["cut_after_bytes"] == 10_000
    assert c.facts["transfer_goal_bytes"] == 64 * 1024
    assert "throughput_bps" not in c.facts  # the volume never completed


async def test_stall_is_detected_within_stall_timeout() -> None:
    c = ctx()
    async with tcp_server(cut_after(5_000)) as port:
        start = time.monotonic()
        with pytest.raises(NetFailure) as info:
            await stage_through(port, DataStageConfig(volume=64 * 1024, min_lifetime=0, stall_timeout=0.3), c)
    assert info.value.failure == Failure.TRANSFER_INCOMPLETE
    assert time.monotonic() - start < 2.0
    assert c.facts["cut_after_bytes"] == 5_000
    cut_s = c.facts["cut_after_s"]
    assert isinstance(cut_s, float) and 0.3 <= cut_s < 1.5


async def test_flow_killed_by_age_after_the_volume_is_a_cut_found_by_the_lifetime_echoes() -> None:
    async def silent_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.5
        while data := await reader.read(65536):
            if loop.time() < end:
                writer.write(data)
                await writer.drain()

    c = ctx()
    async with tcp_server(silent_after) as port:
        with pytest.raises(NetFailure) as info:
            await stage_through(
                port, DataStageConfig(volume=16 * 1024, min_lifetime=4.0, stall_timeout=0.5), c
            )
    assert info.value.failure == Failure.TRANSFER_INCOMPLETE
    assert c.facts["cut_after_bytes"] == 16 * 1024 + HOLD_BYTES  # the echo at 1 s came back, at 2 s not
    cut_s = c.facts["cut_after_s"]
    assert isinstance(cut_s, float) and 2.0 <= cut_s < 3.5
    assert "throughput_bps" in c.facts  # the volume itself went through


async def test_corrupted_echo_is_canary_mismatch_not_a_cut() -> None:
    async def flip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(bytes(b ^ 1 for b in data))
            await writer.drain()

    c = ctx()
    async with tcp_server(flip) as port:
        with pytest.raises(NetFailure) as info:
            await stage_through(port, DataStageConfig(volume=32 * 1024, min_lifetime=0), c)
    assert (info.value.failure, info.value.stage) == (Failure.CANARY_MISMATCH, Stage.TRANSFER)
    assert "cut_after_bytes" not in c.facts


async def test_the_attempt_deadline_during_the_stage_keeps_the_cut_point_in_the_result() -> None:
    async def stage_only(target: object, c: ProbeContext):  # type: ignore[no-untyped-def]
        async with tcp_server(cut_after(3_000)) as port:
            await stage_through(port, DataStageConfig(volume=64 * 1024, min_lifetime=0, stall_timeout=30), c)
        return c.succeed()

    spec = ProbeSpec(kind="test", target_model=DataStageConfig, probe=stage_only)  # type: ignore[arg-type]
    result = await run_probe(spec, DataStageConfig(), ctx(timeout=1.0))  # type: ignore[arg-type]
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.TRANSFER)
    assert result.facts["cut_after_bytes"] == result.facts["bytes_moved"] == 3_000


async def test_lifetime_longer_than_the_time_left_is_clipped_and_said() -> None:
    c = ctx(timeout=1.5)
    async with echo_canary() as port:
        await stage_through(port, DataStageConfig(volume=0, min_lifetime=10.0), c)
    assert c.facts["lifetime_clipped"] is True
    assert isinstance(c.facts["transfer_seconds"], float) and c.facts["transfer_seconds"] < 1.5


async def test_verify_canary_round_trip() -> None:
    async with echo_canary() as port:
        reader, writer = await connect_tcp(LOOPBACK, port)
        stream = PlainStream(reader, writer)
        await verify_canary(stream)
        await stream.close()


# -- the censor in a network namespace ------------------------------------------------------------------


SOCKS_TARGET = {
    "name": "socks-abroad",
    "host": SERVER_IP,
    "port": SOCKS_PORT,
    "canary": {"host": SERVER_IP, "port": CANARY_PORT},
    "data_stage": {"volume": "256KiB", "min_lifetime": "0s", "stall_timeout": "1s"},
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
    got = result.facts["cut_after_bytes"]
    assert isinstance(got, int) and 0 < got < 20_000
    assert result.facts["bytes_moved"] == got


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
