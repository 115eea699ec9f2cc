"""``net.http_connect``'s bounded HTTP/1.1 reader against byte-scripted hostile peers on loopback."""

from __future__ import annotations

import asyncio

import pytest

from reachwatch.failures import Failure, Stage
from reachwatch.net.dial import close_quietly, connect_tcp
from reachwatch.net.errors import NetFailure
from reachwatch.net.http_connect import http_exchange
from tests.servers import Handler, tcp_server

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def answering(*parts: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        for part in parts:
            writer.write(part)
            await writer.drain()
        await reader.read(1)  # hold the connection open until the client gives up

    return handler


async def exchange(port: int, limit: int = 64 * 1024) -> bytes:
    reader, writer = await connect_tcp("127.0.0.1", port)
    try:
        async with asyncio.timeout(5):
            _, body = await http_exchange(reader, writer, REQUEST, Stage.HTTP, body_limit=limit)
        return body
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
            await exchange(port)
    assert (info.value.failure, info.value.stage) == (Failure.RESPONSE_TOO_LARGE, Stage.HTTP)


async def test_chunked_body_is_decoded_and_bounded_by_the_limit() -> None:
    async with tcp_server(answering(CHUNKED, b"5\r\nhello\r\n0\r\n\r\n")) as port:
        assert await exchange(port) == b"hello"
    async with tcp_server(answering(CHUNKED, b"400\r\n" + b"a" * 1024 + b"\r\n" * 100)) as port:
        with pytest.raises(NetFailure) as info:
            await exchange(port, limit=512)
    assert info.value.failure is Failure.RESPONSE_TOO_LARGE


@pytest.mark.parametrize("size_line", [b"-5\r\n", b"zz\r\n"], ids=["negative", "not-hex"])
async def test_bad_chunk_size_is_http_invalid_response(size_line: bytes) -> None:
    async with tcp_server(answering(CHUNKED, size_line + b"hello\r\n0\r\n\r\n")) as port:
        with pytest.raises(NetFailure) as info:
            await exchange(port)
    assert info.value.failure is Failure.HTTP_INVALID_RESPONSE
