"""net.http: URL parts for one request line and Host header; what a failure's detail may say."""

from __future__ import annotations

import asyncio

import pytest

from reachwatch.config.types import Url
from reachwatch.failures import Failure
from reachwatch.net.dial import close_quietly, connect_tcp
from reachwatch.net.errors import NetFailure
from reachwatch.net.http import request
from reachwatch.net.http_connect import http_connect
from tests.servers import tcp_server


@pytest.mark.parametrize(
    ("url", "host", "port", "target", "host_header"),
    [
        ("http://a.test/", "a.test", 80, "/", "a.test"),
        ("https://a.test", "a.test", 443, "/", "a.test"),
        ("https://a.test:8443/p?q=1", "a.test", 8443, "/p?q=1", "a.test:8443"),
        ("http://[2001:db8::1]:8080/x", "2001:db8::1", 8080, "/x", "[2001:db8::1]:8080"),
    ],
)
def test_url_parts(url: str, host: str, port: int, target: str, host_header: str) -> None:
    parsed = Url.parse(url)
    assert (parsed.host, parsed.port, parsed.target, parsed.host_header) == (host, port, target, host_header)


@pytest.mark.parametrize("url", ["ftp://a.test/", "a.test/x", "https:///x"])
def test_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        Url.parse(url)


PEER_SECRET = b"vpn-7.internal.corp.example"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\n" + PEER_SECRET + b" not a header\r\n\r\n",
        b"HTTP/1.1 2xx " + PEER_SECRET + b"\r\n\r\n",
    ],
    ids=["bad-header-line", "bad-status-line"],
)
async def test_invalid_response_detail_does_not_quote_the_peer(answer: bytes) -> None:
    """h11 quotes the offending bytes in its message; a private server's garbage may name the server
    itself (a name the redactor does not know), so the detail keeps h11's reason only."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(answer)
        await writer.drain()
        await reader.read(1)

    async with tcp_server(handler) as port:
        for fetch in (_fetch_http, _connect):
            reader, writer = await connect_tcp("127.0.0.1", port)
            try:
                with pytest.raises(NetFailure) as info:
                    async with asyncio.timeout(5):
                        await fetch(reader, writer)
            finally:
                await close_quietly(writer)
            assert info.value.failure is Failure.HTTP_INVALID_RESPONSE
            assert "line" in info.value.detail  # h11's reason is kept
            assert PEER_SECRET.decode() not in info.value.detail


async def _fetch_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await request(reader, writer, "GET", Url.parse("http://a.test/"), max_bytes=1024)


async def _connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await http_connect(reader, writer, "a.test", 443)
