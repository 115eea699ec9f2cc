"""``reachwatch canary`` as a peer sees it: silence for anything unkeyed, replies no larger than requests,
rate limits per source, bounded echo sessions and connections, ports that cannot be bound, reload, its
metrics, and the command line (one-line errors, SIGTERM).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from reachwatch.canary_limits import ReplyLimiter, source_key
from reachwatch.canaryd import Canary, MetricsServer
from reachwatch.config.canary_service import CanaryServiceConfig
from reachwatch.errors import ConfigError
from reachwatch.formats import canary as wire
from tests.canarylab import KEY, free_ports, request, running_canary, section
from tests.servers import LOOPBACK, free_port

REACHWATCH = [sys.executable, "-m", "reachwatch"]


async def udp_ask(port: int, payload: bytes, wait: float = 0.3) -> list[bytes]:
    """Send one datagram; every datagram that came back within ``wait``."""
    loop = asyncio.get_running_loop()
    got: list[bytes] = []

    class Collect(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            got.append(data)

    transport, _ = await loop.create_datagram_endpoint(Collect, remote_addr=(LOOPBACK, port))
    try:
        transport.sendto(payload)
        await asyncio.sleep(wait)
    finally:
        transport.close()
    return got


async def tcp_ask(port: int, payload: bytes) -> bytes:
    """Send ``payload`` on a fresh connection; everything that came back before the canary closed."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


async def test_unkeyed_requests_meet_silence_and_keyed_ones_a_reply_no_larger(tmp_path: Path) -> None:
    (tcp,) = free_ports(1)
    (udp,) = free_ports(1, socket.SOCK_DGRAM)
    async with running_canary(tmp_path, [tcp], [udp]) as canary:
        keyed = request(udp)
        (reply,) = await udp_ask(udp, keyed)
        assert len(reply) <= len(keyed)
        assert wire.verify_reply(reply, KEY, keyed).port == udp
        other_key = wire.derive_key(b"not the canary's secret at all")
        forged = wire.Request(wire.FrameType.PROBE, wire.Proto.UDP, udp, b"n" * 16).encode(other_key)
        for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\0" * 60, forged, keyed + b"x" * 100):
            assert await udp_ask(udp, junk, wait=0.15) == []
        for junk in (b"SSH-2.0-OpenSSH_9.2\r\n" + b"\0" * 60, forged):
            assert await tcp_ask(tcp, junk) == b""  # closed without one byte
        tcp_keyed = request(tcp, wire.Proto.TCP)
        assert wire.verify_reply(await tcp_ask(tcp, tcp_keyed), KEY, tcp_keyed).proto is wire.Proto.TCP
        counts = canary.counters.requests
    assert counts[("udp", "answered")] == 1 and counts[("tcp", "answered")] == 1
    assert counts[("udp", "mac")] == 1 and counts[("tcp", "mac")] == 1
    assert counts[("udp", "short")] == 1  # the HTTP line
    assert counts[("udp", "magic")] == 1 and counts[("udp", "field")] == 1  # zeros, oversized
    assert counts[("tcp", "magic")] == 1


async def test_replies_to_one_source_are_rate_limited_and_another_source_is_not(tmp_path: Path) -> None:
    (udp,) = free_ports(1, socket.SOCK_DGRAM)
    async with running_canary(tmp_path, [], [udp], per_source_rate=0.01, per_source_burst=3) as canary:
        replies = [await udp_ask(udp, request(udp), wait=0.05) for _ in range(5)]
        assert [len(r) for r in replies] == [1, 1, 1, 0, 0]
        assert canary.counters.requests[("udp", "rate_limited")] == 2
    limiter = ReplyLimiter(per_source_rate=1.0, per_source_burst=1, global_rate=1000.0)
    assert limiter.allow("198.51.100.1", now=0.0) and not limiter.allow("198.51.100.1", now=0.1)
    assert limiter.allow("198.51.100.2", now=0.1)  # another source has its own bucket
    assert limiter.allow("198.51.100.1", now=1.2)  # the rate refills
    # an IPv6 host owns its /64: a new address per request is still one source
    assert source_key("2001:db8:1:2::a") == source_key("2001:db8:1:2::b") == "2001:db8:1:2::/64"
    assert source_key("::ffff:198.51.100.7") == "198.51.100.7"


def test_the_source_table_stays_bounded() -> None:
    limiter = ReplyLimiter(per_source_rate=1.0, per_source_burst=1, global_rate=1e6, max_sources=100)
    for i in range(1000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}", now=float(i))
    assert limiter.sources == 100


async def test_an_echo_session_echoes_until_its_byte_budget(tmp_path: Path) -> None:
    (tcp,) = free_ports(1)
    async with running_canary(tmp_path, [tcp], [], echo_max_bytes=1000) as canary:
        reader, writer = await asyncio.open_connection(LOOPBACK, tcp)
        keyed = request(tcp, wire.Proto.TCP, wire.FrameType.ECHO)
        writer.write(keyed)
        wire.verify_reply(await reader.readexactly(wire.REPLY_SIZE), KEY, keyed)
        writer.write(b"a" * 600)
        assert await reader.readexactly(600) == b"a" * 600
        writer.write(b"b" * 600)
        async with asyncio.timeout(5):
            rest = await reader.read()  # 400 more, then the canary closes
        writer.close()
        assert rest == b"b" * 400
        assert (canary.counters.echo_sessions, canary.counters.echo_bytes) == (1, 1000)
        # an echo session needs a stream: over UDP an ECHO request is refused
        assert await udp_ask(tcp, request(tcp, kind=wire.FrameType.ECHO), wait=0.1) == []


async def test_connections_over_the_per_source_cap_are_closed_at_once(tmp_path: Path) -> None:
    (tcp,) = free_ports(1)
    async with running_canary(tmp_path, [tcp], [], max_connections_per_source=2) as canary:
        held = [await asyncio.open_connection(LOOPBACK, tcp) for _ in range(2)]
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection(LOOPBACK, tcp)
        async with asyncio.timeout(2):
            assert await reader.read() == b""
        writer.close()
        assert canary.counters.connections_refused == 1
        for _, w in held:
            w.close()


async def test_a_port_in_use_is_reported_and_the_others_serve(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind((LOOPBACK, 0))
    busy.listen()
    taken = busy.getsockname()[1]
    (free,) = free_ports(1)
    try:
        async with running_canary(tmp_path, [taken, free], []) as canary:
            assert canary.listening == {
                ("tcp", min(taken, free)): min(taken, free) == free,
                ("tcp", max(taken, free)): max(taken, free) == free,
            }
            keyed = request(free, wire.Proto.TCP)
            assert await tcp_ask(free, keyed)
        config = CanaryServiceConfig.model_validate(section(tmp_path, [taken], []))
        lonely = Canary(config, KEY)
        with pytest.raises(ConfigError, match="could not listen on any port"):
            await lonely.start()
        await lonely.close()
    finally:
        busy.close()


async def test_a_reload_moves_ports_and_changes_the_secret(tmp_path: Path) -> None:
    old, new = free_ports(2)
    async with running_canary(tmp_path, [old], []) as canary:
        new_key = wire.derive_key(b"the rotated secret, 16+ chars")
        await canary.apply(CanaryServiceConfig.model_validate(section(tmp_path, [new], [])), new_key)
        with pytest.raises(OSError):
            await asyncio.open_connection(LOOPBACK, old)
        sent = wire.Request(wire.FrameType.PROBE, wire.Proto.TCP, new, b"r" * 16).encode(new_key)
        assert wire.verify_reply(await tcp_ask(new, sent), new_key, sent).port == new
        assert await tcp_ask(new, request(new, wire.Proto.TCP)) == b""  # the old secret no longer works
        assert canary.listening == {("tcp", new): True}


async def test_its_metrics_count_what_it_did(tmp_path: Path) -> None:
    (udp,) = free_ports(1, socket.SOCK_DGRAM)
    port = free_port()
    async with running_canary(tmp_path, [], [udp]) as canary:
        metrics = MetricsServer(canary, f"{LOOPBACK}:{port}")
        await metrics.start()
        try:
            await udp_ask(udp, request(udp), wait=0.1)
            await udp_ask(udp, b"junk", wait=0.05)
            async with aiohttp.ClientSession() as http, http.get(f"http://{LOOPBACK}:{port}/metrics") as resp:
                text = await resp.text()
        finally:
            await metrics.stop()
    assert 'reachwatch_canary_requests_total{proto="udp",result="answered"} 1.0' in text
    assert 'reachwatch_canary_requests_total{proto="udp",result="short"} 1.0' in text
    assert f'reachwatch_canary_port_listening{{port="{udp}",proto="udp"}} 1.0' in text


async def test_a_metrics_port_in_use_is_its_config_error_and_stop_frees_the_port(tmp_path: Path) -> None:
    """The web server and the canary's metrics share ``weblisten.ServedApp``: a taken port is one config
    error naming the field, and a stopped server leaves the port free for the next start."""
    (udp,) = free_ports(1, socket.SOCK_DGRAM)
    async with running_canary(tmp_path, [], [udp]) as canary:
        with socket.socket() as taken:
            taken.bind((LOOPBACK, 0))
            taken.listen()
            busy = taken.getsockname()[1]
            with pytest.raises(ConfigError) as err:
                await MetricsServer(canary, f"{LOOPBACK}:{busy}").start()
            assert str(err.value).startswith(
                f"canary.metrics_listen_address: cannot listen on {LOOPBACK}:{busy}"
            )
        port = free_port()
        for _ in range(2):  # the second start binds the port the first stop released
            metrics = MetricsServer(canary, f"{LOOPBACK}:{port}")
            await metrics.start()
            await metrics.stop()


def _config(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def test_the_command_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    no_section = _config(tmp_path, {"targets": []})
    proc = subprocess.run(
        [*REACHWATCH, "canary", "--config", str(no_section)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr
        == f"reachwatch: {no_section}: no canary: section (reachwatch canary needs one; see docs/CANARY.md)\n"
    )
    weak = tmp_path / "weak.secret"
    weak.write_text("short\n")
    weak.chmod(0o600)
    short = _config(tmp_path, {"canary": {"secret_file": str(weak), "tcp_ports": [7]}})
    proc = subprocess.run(
        [*REACHWATCH, "canary", "--check", "--config", str(short)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"reachwatch: {short}: canary: the canary secret must be at least 16 characters\n"


def test_the_command_serves_until_sigterm(tmp_path: Path) -> None:
    (tcp,) = free_ports(1)
    metrics = free_port()
    path = _config(
        tmp_path, {"canary": section(tmp_path, [tcp], [], metrics_listen_address=f"{LOOPBACK}:{metrics}")}
    )
    check = subprocess.run(
        [*REACHWATCH, "canary", "--check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (check.returncode, check.stdout) == (0, f"{path}: canary OK (1 TCP, 0 UDP ports)\n")
    proc = subprocess.Popen(
        [*REACHWATCH, "canary", "--config", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex((LOOPBACK, metrics)) == 0:
                    break
            time.sleep(0.05)
        keyed = request(tcp, wire.Proto.TCP)
        with socket.create_connection((LOOPBACK, tcp), timeout=5) as s:
            s.sendall(keyed)
            assert wire.verify_reply(s.recv(100), KEY, keyed).port == tcp
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert b"canary_started" in err and b"canary_stopped" in err
