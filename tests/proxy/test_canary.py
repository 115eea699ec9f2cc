"""The tunnel-usability stage: throughput through real tunnels, and a censor that cuts flows after N bytes.

The censor tests build a netlab (client ns "inside", router ns as the censor, server ns "abroad" running
microsocks and an echo canary) and run the real socks5 probe in the client namespace.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.net.dial import connect_tcp
from reachwatch.net.errors import NetFailure
from reachwatch.probes.base import ProbeContext
from reachwatch.vpn.canary import CanaryConfig, PlainStream, push_canary, verify_canary
from tests.netlab import SERVER_IP, Lab
from tests.proxy.conftest import cut_after, echo_canary
from tests.servers import LOOPBACK, tcp_server

TCP_ECHO = """
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
def serve(c):
    while data := c.recv(65536):
        c.sendall(data)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""
# one probe attempt in the client namespace; logs go to stderr so stdout carries only the result
RUN_PROBE = """
import asyncio, json, logging, sys
import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe
req = json.loads(sys.argv[1])
spec = PROBES[req["kind"]]
target = spec.target_model.model_validate(req["target"])
ctx = ProbeContext(target=target.name, kind=spec.kind, timeout=req["timeout"])
print(json.dumps(asyncio.run(run_probe(spec, target, ctx)).to_dict()))
"""
REPO = Path(__file__).resolve().parents[2]
SOCKS_PORT = 1080
CANARY_PORT = 7007


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


def wait_tcp_listen(lab: Lab, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.server.run(["ss", "-Htln", f"sport = :{port}"], check=False).stdout.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on tcp port {port} in the server namespace")


@pytest.fixture
def proxy_lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with Lab("cnry") as lab:
        lab.server.popen(["microsocks", "-i", SERVER_IP, "-p", str(SOCKS_PORT)])
        lab.server.popen(["python3", "-c", TCP_ECHO, SERVER_IP, str(CANARY_PORT)])
        wait_tcp_listen(lab, SOCKS_PORT)
        wait_tcp_listen(lab, CANARY_PORT)
        # conntrack byte counters are off by default; `ct bytes` needs them (per namespace)
        lab.router.run("sysctl -qw net.netfilter.nf_conntrack_acct=1")
        yield lab


def probe_in_client(lab: Lab, kind: str, target: dict[str, object], timeout: float) -> ProbeResult:
    req = json.dumps({"kind": kind, "target": {"kind": kind, **target}, "timeout": timeout})
    python = str(REPO / ".venv" / "bin" / "python")
    out = lab.client.run([python, "-c", RUN_PROBE, req]).stdout
    return ProbeResult.from_dict(json.loads(out))


SOCKS_TARGET = {
    "name": "socks-abroad",
    "host": SERVER_IP,
    "port": SOCKS_PORT,
    "canary": {"host": SERVER_IP, "port": CANARY_PORT, "push_bytes": 256 * 1024, "stall_timeout": "1s"},
}


@pytest.mark.root
@pytest.mark.slow
def test_censor_cutting_flows_after_20kb_is_seen_at_transfer_while_handshake_works(
    proxy_lab: Lab,
) -> None:
    lab = proxy_lab
    control = probe_in_client(lab, "socks5", SOCKS_TARGET, 8)
    assert control.success, control  # same path, no rule: the full push gets through
    lab.censor(f"ip daddr {SERVER_IP} tcp dport {SOCKS_PORT} ct bytes > 20000 drop")
    result = probe_in_client(lab, "socks5", SOCKS_TARGET, 8)
    assert (result.failure, result.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER)
    assert "protocol_handshake" in result.stage_durations and "tunnel" in result.stage_durations
    got = result.facts["transfer_bytes"]
    assert isinstance(got, int) and 0 < got < 20_000


@pytest.mark.root
@pytest.mark.slow
def test_throttled_path_gives_lower_throughput_than_unthrottled(proxy_lab: Lab) -> None:
    lab = proxy_lab
    fast = probe_in_client(lab, "socks5", SOCKS_TARGET, 8)
    lab.throttle(rate="2mbit", burst="16kb", latency="400ms")
    slow = probe_in_client(lab, "socks5", SOCKS_TARGET, 8)
    assert fast.success and slow.success, (fast, slow)
    slow_bps = slow.facts["throughput_bps"]
    assert isinstance(slow_bps, float)
    assert slow_bps < 2_000_000 / 8 * 1.5  # never above the policed rate (+ burst slack)
    assert isinstance(fast.facts["throughput_bps"], float) and fast.facts["throughput_bps"] > 2 * slow_bps
