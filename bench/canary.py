"""How much ``reachwatch canary`` answers, and what a port survey costs it.

Starts a real ``reachwatch canary`` process on 127.0.0.1 (limits raised so the rate limiter does not
decide), then:

1. UDP: ``--udp`` keyed requests from one socket with ``--window`` outstanding at a time; replies per
   second and the canary's CPU seconds per thousand replies;
2. TCP: ``--tcp`` keyed PROBE connections, ``--window`` at a time; connections per second and CPU per
   thousand;
3. garbage: ``--udp`` unkeyed datagrams (what a scan or a flood costs it): CPU per thousand;
4. one survey of the default ports as the canary sees it: 16 TCP and 16 UDP requests when every port is
   open (the first datagram answered), up to 16 + 48 when the UDP ports need all three sends.

    .venv/bin/python bench/canary.py --udp 20000 --tcp 2000 --window 32

Prints a table; figures in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from reachwatch.formats import canary as wire

SECRET = "bench-canary-secret-0123456789abcdef"
KEY = wire.derive_key(SECRET.encode())


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(proto: wire.Proto, port: int) -> bytes:
    return wire.Request(wire.FrameType.PROBE, proto, port, os.urandom(wire.NONCE_SIZE)).encode(KEY)


async def garbage_run(port: int, count: int, window: int) -> int:
    """``count`` unkeyed datagrams, ``window`` per loop turn; then a moment for the canary to drop them."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("127.0.0.1", port)
    )
    for i in range(count):
        transport.sendto(os.urandom(wire.REQUEST_SIZE))
        if i % window == 0:
            await asyncio.sleep(0.001)
    await asyncio.sleep(0.5)
    transport.close()
    return 0


async def udp_run(port: int, count: int, window: int) -> int:
    """Send ``count`` datagrams, at most ``window`` unanswered at once (a timeout frees a slot)."""
    loop = asyncio.get_running_loop()
    answered = 0
    slots = asyncio.Semaphore(window)
    waiting: dict[bytes, asyncio.Future[None]] = {}

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            nonlocal answered
            answered += 1
            future = waiting.pop(data[wire.HEADER_SIZE : wire.HEADER_SIZE + wire.NONCE_SIZE], None)
            if future is not None and not future.done():
                future.set_result(None)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))

    async def one() -> None:
        async with slots:
            data = request(wire.Proto.UDP, port)
            future = loop.create_future()
            waiting[data[wire.HEADER_SIZE : wire.HEADER_SIZE + wire.NONCE_SIZE]] = future
            transport.sendto(data)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, 1.0)

    await asyncio.gather(*(one() for _ in range(count)))
    transport.close()
    return answered


async def tcp_run(port: int, count: int, window: int) -> int:
    slots = asyncio.Semaphore(window)
    answered = 0

    async def one() -> None:
        nonlocal answered
        async with slots:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            sent = request(wire.Proto.TCP, port)
            writer.write(sent)
            wire.verify_reply(await reader.readexactly(wire.REPLY_SIZE), KEY, sent)
            answered += 1
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return answered


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--udp", type=int, default=20000)
    parser.add_argument("--tcp", type=int, default=2000)
    parser.add_argument("--window", type=int, default=32)
    args = parser.parse_args()
    tcp_port, udp_port, metrics = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        secret = Path(tmp) / "canary.secret"
        secret.write_text(SECRET)
        secret.chmod(0o600)
        config = Path(tmp) / "canary.yaml"
        section = {
            "listen_addresses": ["127.0.0.1"],
            "tcp_ports": [tcp_port],
            "udp_ports": [udp_port],
            "secret_file": str(secret),
            "per_source_rate": 1_000_000 / 100,  # the limiter must not decide here
            "per_source_burst": 100_000,
            "global_rate": 1_000_000,
            "max_connections_per_source": 65536,
            "max_connections": 65536,
            "metrics_listen_address": f"127.0.0.1:{metrics}",
        }
        config.write_text(yaml.safe_dump({"canary": section}))
        config.chmod(0o600)
        proc = subprocess.Popen(
            [sys.executable, "-m", "reachwatch", "canary", "--config", str(config), "--log.level", "warning"]
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", metrics)) == 0:
                        break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the canary did not start")
                time.sleep(0.05)
            rows = []
            for name, count, run in (
                ("UDP keyed requests", args.udp, lambda: udp_run(udp_port, args.udp, args.window)),
                ("TCP keyed PROBE connections", args.tcp, lambda: tcp_run(tcp_port, args.tcp, args.window)),
                ("UDP garbage (silence)", args.udp, lambda: garbage_run(udp_port, args.udp, args.window)),
            ):
                cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
                answered = asyncio.run(run())
                wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
                rows.append((name, count, answered, count / wall, 1000 * cpu / count))
            survey_cpu = (16 * rows[1][4] + 16 * rows[0][4]) / 1000
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{'load':32} {'sent':>7} {'answered':>9} {'per s':>8} {'canary CPU ms / 1000':>22}")
    for name, count, answered, rate, cpu in rows:
        shown = f"{rate:8.0f}" if answered else f"{'-':>8}"  # garbage is sent without waiting
        print(f"{name:32} {count:7d} {answered:9d} {shown} {cpu * 1000:22.1f}")
    print(
        f"one survey of the default ports, all open (16 TCP + 16 UDP): ~{survey_cpu * 1000:.1f} ms canary CPU"
    )


if __name__ == "__main__":
    main()
