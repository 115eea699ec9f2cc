"""Hostile peers: endless bytes, garbage, tarpits. Each attempt must end by its deadline (plus a small
slack for teardown) and read no more than the configured bounds (``received_bytes`` is every byte the
probe took off the socket)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from reachwatch.failures import Failure, Stage
from reachwatch.net.http import MAX_HEAD_BYTES, READ_CHUNK
from tests.probes.util import run
from tests.servers import Handler, tcp_server

SLACK = 0.5
MAX_BYTES = 8192


async def endless(prefix: bytes, filler: bytes) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(prefix)
        while True:
            writer.write(filler)
            await writer.drain()

    return handle


def http(port: int) -> dict[str, object]:
    return {"kind": "http", "url": f"http://127.0.0.1:{port}/", "max_bytes": MAX_BYTES}


async def test_endless_headers_are_an_invalid_response_read_within_the_head_bound() -> None:
    handler = await endless(b"HTTP/1.1 200 OK\r\n", b"X-Filler: " + b"a" * 1000 + b"\r\n")
    async with tcp_server(handler) as port:
        result = await run(http(port))
    assert (result.failure, result.stage) == (Failure.HTTP_INVALID_RESPONSE, Stage.HTTP)
    assert int(result.facts["received_bytes"]) <= MAX_HEAD_BYTES + READ_CHUNK


async def test_endless_status_line_without_newline_is_bounded() -> None:
    handler = await endless(b"HTTP/1.1 200 ", b"O" * 4096)
    async with tcp_server(handler) as port:
        result = await run(http(port))
    assert result.failure is Failure.HTTP_INVALID_RESPONSE
    assert int(result.facts["received_bytes"]) <= MAX_HEAD_BYTES + READ_CHUNK


async def test_endless_body_stops_at_max_bytes() -> None:
    handler = await endless(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"b" * 65536)
    async with tcp_server(handler) as port:
        result = await run(http(port))
    assert result.success, result
    assert result.facts["body_bytes"] == MAX_BYTES
    assert result.facts["truncated"] is True
    assert int(result.facts["received_bytes"]) <= MAX_BYTES + MAX_HEAD_BYTES + READ_CHUNK


async def test_endless_chunked_body_stops_at_max_bytes() -> None:
    chunk = b"b" * 4096
    handler = await endless(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"1000\r\n" + chunk + b"\r\n"
    )
    async with tcp_server(handler) as port:
        result = await run(http(port))
    assert result.success, result
    assert result.facts["body_bytes"] == MAX_BYTES
    assert int(result.facts["received_bytes"]) <= MAX_BYTES + MAX_HEAD_BYTES + READ_CHUNK


async def test_random_garbage_is_an_invalid_response() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(os.urandom(4096))
        await writer.drain()
        await reader.read()

    async with tcp_server(garbage) as port:
        result = await run(http(port))
    assert (result.failure, result.stage) == (Failure.HTTP_INVALID_RESPONSE, Stage.HTTP)


async def test_another_protocol_banner_is_an_invalid_response() -> None:
    async def ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        await writer.drain()
        await reader.read()

    async with tcp_server(ssh) as port:
        result = await run(http(port))
    assert result.failure is Failure.HTTP_INVALID_RESPONSE


async def test_tarpit_sending_a_byte_a_second_ends_at_the_deadline() -> None:
    async def tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello":
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1.0)

    async with tcp_server(tarpit) as port:
        start = time.monotonic()
        result = await run(http(port), timeout=1.5)
        elapsed = time.monotonic() - start
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.HTTP)
    assert elapsed < 1.5 + SLACK
    assert int(result.facts["received_bytes"]) <= 3


async def test_tarpit_during_tls_handshake_ends_at_the_deadline(ca_file: Path) -> None:
    async def tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        for byte in b"\x16\x03\x03\x40\x00" + b"\x02" * 64:  # a handshake record that never completes
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1.0)

    async with tcp_server(tarpit) as port:
        start = time.monotonic()
        result = await run(
            {
                "kind": "tls",
                "host": "127.0.0.1",
                "port": port,
                "server_name": "a.test",
                "ca_file": str(ca_file),
            },
            timeout=1.5,
        )
        elapsed = time.monotonic() - start
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.TLS_HANDSHAKE)
    assert elapsed < 1.5 + SLACK


async def test_garbage_instead_of_a_tls_handshake_fails_the_handshake(ca_file: Path) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n" + os.urandom(2048))
        await writer.drain()
        await reader.read()

    async with tcp_server(garbage) as port:
        result = await run(
            {
                "kind": "tls",
                "host": "127.0.0.1",
                "port": port,
                "server_name": "a.test",
                "ca_file": str(ca_file),
            }
        )
    assert result.stage is Stage.TLS_HANDSHAKE
    assert result.failure in {Failure.SSL_FAILED_HANDSHAKE, Failure.EOF_ERROR, Failure.CONNECTION_RESET}


async def test_dns_garbage_datagrams_are_ignored_until_the_deadline() -> None:
    """A UDP peer answering every query with garbage: dropped, bounded, and the probe ends on time."""

    class Garbage(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
            for _ in range(4):
                self.transport.sendto(os.urandom(512), addr)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        Garbage, local_addr=("127.0.0.1", 0), family=socket.AF_INET
    )
    try:
        port = transport.get_extra_info("sockname")[1]
        start = time.monotonic()
        result = await run(
            {
                "kind": "dns",
                "query": "a.test",
                "system": False,
                "resolvers": [{"name": "g", "udp": f"127.0.0.1:{port}"}],
            },
            timeout=1.0,
        )
        elapsed = time.monotonic() - start
    finally:
        transport.close()
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.RESOLVE)
    assert elapsed < 1.0 + SLACK
