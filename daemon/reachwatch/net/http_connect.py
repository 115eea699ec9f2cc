"""HTTP CONNECT through a proxy (RFC 9110 section 9.3.6), and the bounded HTTP/1.1 message reading it needs.

``http_connect`` sends ``CONNECT host:port`` (with ``Proxy-Authorization: Basic`` when credentials are
given) and maps the answer to where it failed:

- no parseable status line: ``protocol_handshake``/``http_invalid_response`` (not an HTTP proxy);
- ``407`` (``401`` from tinyproxy): ``protocol_handshake``/``proxy_auth_failed`` (alive, wants other
  credentials);
- ``403``/``405``: ``tunnel``/``proxy_connect_refused`` (the proxy's policy, e.g. a port not allowed);
- ``500`` (tinyproxy), ``502``/``503``/``504``: ``tunnel``/``proxy_upstream_failed`` (the proxy's own
  upstream; not blocking);
- other non-2xx: ``tunnel``/``http_unexpected_status_code``.

``read_http_head`` and ``read_http_body`` are also used for requests sent *through* an established
stream (the HTTP canary, the OpenConnect XML exchange): heads are capped at 16 KiB / 100 lines, bodies
at the caller's limit, so an endless or garbage-spewing peer costs bounded memory.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field

from reachwatch.config.types import host_port
from reachwatch.failures import Failure, Stage
from reachwatch.net.errors import NetFailure, classified

MAX_HEAD_BYTES = 16 * 1024
MAX_HEAD_LINES = 100

_CONNECT_FAILURES: dict[int, Failure] = {
    403: Failure.PROXY_CONNECT_REFUSED,
    405: Failure.PROXY_CONNECT_REFUSED,
    # tinyproxy answers "500 Unable to connect" when its own connect upstream fails (squid uses 503)
    500: Failure.PROXY_UPSTREAM_FAILED,
    502: Failure.PROXY_UPSTREAM_FAILED,
    503: Failure.PROXY_UPSTREAM_FAILED,
    504: Failure.PROXY_UPSTREAM_FAILED,
}


@dataclass(frozen=True)
class HttpHead:
    """Status line and headers of one HTTP/1.x response (header names lower-cased)."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    # Set-Cookie may repeat and must not be folded into one value (RFC 6265 section 3)
    set_cookies: tuple[str, ...] = ()

    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        try:
            length = int(value)
        except ValueError:
            return None
        return length if length >= 0 else None


async def _read_line(reader: asyncio.StreamReader, stage: Stage) -> bytes:
    """One line; a line longer than the stream's buffer limit (64 KiB) is ``response_too_large``."""
    try:
        return await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise NetFailure(Failure.RESPONSE_TOO_LARGE, stage, "line too long") from exc


async def read_http_head(reader: asyncio.StreamReader, stage: Stage) -> HttpHead:
    """Read a response head up to the blank line; never more than ``MAX_HEAD_BYTES``."""
    lines: list[bytes] = []
    total = 0
    with classified(stage):
        while True:
            line = await _read_line(reader, stage)
            total += len(line)
            if total > MAX_HEAD_BYTES or len(lines) >= MAX_HEAD_LINES:
                raise NetFailure(Failure.RESPONSE_TOO_LARGE, stage, "response head too large")
            if line in (b"\r\n", b"\n"):
                break
            lines.append(line.rstrip(b"\r\n"))
    if not lines:
        raise NetFailure(Failure.HTTP_INVALID_RESPONSE, stage, "empty response head")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise NetFailure(Failure.HTTP_INVALID_RESPONSE, stage, "not an HTTP/1.x status line")
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw in lines[1:]:
        name, sep, value = raw.partition(b":")
        if not sep:
            raise NetFailure(Failure.HTTP_INVALID_RESPONSE, stage, "malformed header line")
        key = name.strip().lower().decode("latin-1")
        headers[key] = value.strip().decode("latin-1")
        if key == "set-cookie":
            cookies.append(headers[key])
    reason = parts[2].decode("latin-1") if len(parts) == 3 else ""
    return HttpHead(status=int(parts[1]), reason=reason, headers=headers, set_cookies=tuple(cookies))


async def read_http_body(reader: asyncio.StreamReader, head: HttpHead, stage: Stage, limit: int) -> bytes:
    """The body of ``head``'s response: by Content-Length, else until close; at most ``limit`` bytes."""
    length = head.content_length()
    with classified(stage):
        if length is not None:
            if length > limit:
                raise NetFailure(Failure.RESPONSE_TOO_LARGE, stage, f"body of {length} bytes")
            return await reader.readexactly(length)
        if head.headers.get("transfer-encoding", "").lower() == "chunked":
            return await _read_chunked(reader, stage, limit)
        body = await reader.read(limit + 1)
        chunks = [body]
        size = len(body)
        while body and size <= limit:
            body = await reader.read(limit + 1 - size)
            chunks.append(body)
            size += len(body)
        if size > limit:
            raise NetFailure(Failure.RESPONSE_TOO_LARGE, stage, "body over limit")
        return b"".join(chunks)


async def _read_chunked(reader: asyncio.StreamReader, stage: Stage, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        line = await _read_line(reader, stage)
        try:
            chunk_len = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            chunk_len = -1
        if chunk_len < 0:  # int() takes "-5": readexactly(-5) would be a ValueError, i.e. a crash
            raise NetFailure(Failure.HTTP_INVALID_RESPONSE, stage, "bad chunk size")
        if chunk_len == 0:
            # trailer fields up to the blank line: consumed (bounded) so that a next response on this
            # connection (OpenConnect's login rounds) starts at its status line
            for _ in range(MAX_HEAD_LINES):
                if (await _read_line(reader, stage)).strip() == b"":
                    return b"".join(chunks)
            raise NetFailure(Failure.RESPONSE_TOO_LARGE, stage, "too many trailer lines")
        size += chunk_len
        if size > limit:
            raise NetFailure(Failure.RESPONSE_TOO_LARGE, stage, "chunked body over limit")
        chunks.append(await reader.readexactly(chunk_len))
        await reader.readexactly(2)


def basic_auth(username: str, password: str) -> str:
    """The ``Basic`` credentials value of an (Proxy-)Authorization header (RFC 7617)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


async def http_connect(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    port: int,
    *,
    username: str | None = None,
    password: str | None = None,
) -> HttpHead:
    """Open a tunnel to ``host:port`` through the HTTP proxy on this connection; returns the 2xx head."""
    authority = host_port(host, port)
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", "User-Agent: reachwatch"]
    if username is not None:
        lines.append(f"Proxy-Authorization: {basic_auth(username, password or '')}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with classified(Stage.PROTOCOL_HANDSHAKE):
        writer.write(request)
        await writer.drain()
    head = await read_http_head(reader, Stage.PROTOCOL_HANDSHAKE)
    if 200 <= head.status < 300:
        return head
    # 407 is the standard answer; tinyproxy 1.11 answers a CONNECT with bad credentials with 401
    if head.status in (401, 407):
        raise NetFailure(Failure.PROXY_AUTH_FAILED, Stage.PROTOCOL_HANDSHAKE, f"{head.status} from proxy")
    failure = _CONNECT_FAILURES.get(head.status, Failure.HTTP_UNEXPECTED_STATUS_CODE)
    raise NetFailure(failure, Stage.TUNNEL, f"CONNECT answered {head.status}")


async def http_exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: bytes,
    stage: Stage,
    *,
    body_limit: int,
) -> tuple[HttpHead, bytes]:
    """Send one complete HTTP/1.1 request on an open (TLS) stream; return the head and bounded body."""
    with classified(stage):
        writer.write(request)
        await writer.drain()
    head = await read_http_head(reader, stage)
    body = await read_http_body(reader, head, stage, body_limit)
    return head, body
