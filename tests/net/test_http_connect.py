"""The HTTP/1.1 exchange as CONNECT and OpenConnect use it (whole bodies within a limit, keep-alive rounds,
tunnel bytes that share a read with the proxy's answer), against byte-scripted hostile peers on loopback."""

from __future__ import annotations

import asyncio

import pytest

from reachwatch.config.types import Url
from reachwatch.failures import Failure, Stage
from reachwatch.net.dial import close_quietly, connect_tcp
from reachwatch.net.errors import NetFailure
from reachwatch.net.http import HttpExchange
from reachwatch.net.http_connect import http_connect
from reachwatch.vpn.canary import PlainStream
from tests.servers import Handler, tcp_server

URL = Url("http", "x", 80, "/", "x")


def answering(*parts: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        for part in parts:
            writer.write(part)
            await writer.drain()
        await reader.read(1)  # hold the connection open until the client gives up

    return handler


def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> HttpExchange:
    return HttpExchange(reader, writer, oversized=Failure.RESPONSE_TOO_LARGE, keep_alive=True)


async def whole_body(port: int, limit: int = 64 * 1024) -> bytes:
    reader, writer = await connect_tcp("127.0.0.1", port)
    try:
        async with asyncio.timeout(5):
            exchange = _exchange(reader, writer)
            await exchange.send_request("GET", URL)
            return await exchange.read_whole_body(await exchange.read_head(), limit)
    finally:
        await close_quietly(writer)


CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "tail",
    [b"1" * (70 * 1024), b"5\r\nhello\r\n0\r\n" + b"x" * (70 * 1024)],
    ids=["endless-chunk-size-line", "endless-trailer-line"],
)
async def test_chunk_lines_without_end_are_response_too_large_not_a_crash(tail: bytes) -> None:
    async with tcp_server(answering(CHUNKED, tail)) as port:
        with pytest.raises(NetFailure) as info:
            await whole_body(port)
    assert (info.value.failure, info.value.stage) == (Failure.RESPONSE_TOO_LARGE, Stage.HTTP)


async def test_chunked_body_is_decoded_and_bounded_by_the_limit() -> None:
    async with tcp_server(answering(CHUNKED, b"5\r\nhello\r\n0\r\n\r\n")) as port:
        assert await whole_body(port) == b"hello"
    async with tcp_server(answering(CHUNKED, b"400\r\n" + b"a" * 1024 + b"\r\n" * 100)) as port:
        with pytest.raises(NetFailure) as info:
            await whole_body(port, limit=512)
    assert info.value.failure is Failure.RESPONSE_TOO_LARGE


async def test_announced_length_over_the_limit_fails_before_reading_the_body() -> None:
    async with tcp_server(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 999999\r\n\r\nabc")) as port:
        with pytest.raises(NetFailure) as info:
            await whole_body(port, limit=1024)
    assert info.value.failure is Failure.RESPONSE_TOO_LARGE
    assert "999999" in info.value.detail


@pytest.mark.parametrize("size_line", [b"-5\r\n", b"zz\r\n"], ids=["negative", "not-hex"])
async def test_bad_chunk_size_is_http_invalid_response(size_line: bytes) -> None:
    async with tcp_server(answering(CHUNKED, size_line + b"hello\r\n0\r\n\r\n")) as port:
        with pytest.raises(NetFailure) as info:
            await whole_body(port)
    assert info.value.failure is Failure.HTTP_INVALID_RESPONSE


async def test_a_head_of_more_than_100_lines_is_over_the_bound_though_small() -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 120 + b"\r\n"  # 737 bytes, far below 16 KiB
    async with tcp_server(answering(head)) as port:
        with pytest.raises(NetFailure) as info:
            await whole_body(port)
    assert info.value.failure is Failure.RESPONSE_TOO_LARGE


def rounds(*answers: bytes) -> Handler:
    """A keep-alive server: one scripted answer per request head it reads."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        await reader.read(1)

    return handler


async def test_keep_alive_round_follows_a_chunked_answer_with_trailers() -> None:
    """OpenConnect logs in over several rounds on one connection: the trailer of a chunked answer must be
    consumed so the next answer starts at its status line."""
    first = CHUNKED + b"2\r\nok\r\n0\r\nX-Trailer: 1\r\n\r\n"
    second = b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nnext"
    async with tcp_server(rounds(first, second)) as port:
        reader, writer = await connect_tcp("127.0.0.1", port)
        try:
            async with asyncio.timeout(5):
                exchange = _exchange(reader, writer)
                await exchange.send_request("POST", URL, body=b"1")
                assert await exchange.read_whole_body(await exchange.read_head(), 1024) == b"ok"
                await exchange.send_request("POST", URL, body=b"2")
                head = await exchange.read_head()
                assert (head.status, await exchange.read_whole_body(head, 1024)) == (201, b"next")
        finally:
            await close_quietly(writer)


async def test_a_server_that_closes_after_answering_ends_the_next_round_as_eof() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with tcp_server(rounds(answer)) as port:
        reader, writer = await connect_tcp("127.0.0.1", port)
        try:
            exchange = _exchange(reader, writer)
            await exchange.send_request("POST", URL)
            await exchange.read_whole_body(await exchange.read_head(), 1024)
            with pytest.raises(NetFailure) as info:
                await exchange.send_request("POST", URL)
        finally:
            await close_quietly(writer)
    assert info.value.failure is Failure.EOF_ERROR


async def test_tunnel_bytes_sharing_a_read_with_the_connect_answer_reach_the_stream() -> None:
    """A destination that speaks first (SSH) can put its banner in the same segment as the proxy's 200;
    the exchange reads in 16 KiB pieces, so those bytes must be handed on, not dropped."""
    banner = b"SSH-2.0-OpenSSH_9.2\r\n"

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n" + banner)
        await writer.drain()
        await reader.read(1)

    async with tcp_server(proxy) as port:
        reader, writer = await connect_tcp("127.0.0.1", port)
        stream = PlainStream(reader, writer)
        try:
            async with asyncio.timeout(5):
                tunnel = await http_connect(reader, writer, "ssh.test", 22)
                stream.pending = tunnel.early_data
                assert tunnel.head.status == 200
                assert await stream.recv(5) + await stream.recv(100) == banner
        finally:
            await stream.close()
