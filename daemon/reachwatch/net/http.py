"""One HTTP/1.1 request/response over an open (TCP or TLS) stream, with h11, bounded in bytes.

h11 does the parsing (no hand-rolled HTTP); this module feeds it bounded reads and turns its verdicts
into the failure vocabulary:

- a head (status line + headers) larger than ``max_head`` bytes, or bytes that are not HTTP at all,
  is ``http_invalid_response``;
- a body is read up to ``max_bytes`` and then we stop reading (``truncated``), so an endless body costs
  ``max_bytes`` of memory, never more;
- a peer that closes before the body announced by ``Content-Length``/chunking is complete is
  ``eof_error`` (a reset is ``connection_reset``), which the throughput probe reports as a cut transfer.

Time is bounded by the caller's deadline (a tarpit sending one byte a second ends there); ``received``
and ``body_received`` stay readable after a timeout so the caller can report partial progress.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from reachwatch.failures import Failure, Stage
from reachwatch.net.errors import NetFailure, classified

MAX_HEAD_BYTES = 16 * 1024
READ_CHUNK = 16 * 1024
# 1xx responses before the final one; a server sending more is playing games with us
MAX_INFORMATIONAL = 8
USER_AGENT = "reachwatch/0.1"
_STATUS_PREFIX = b"HTTP/"


# where h11's message stops being its reason and starts quoting the offending bytes
# ("illegal header line: bytearray(b'...')", "Illegal header value b'...'")
_H11_QUOTE = re.compile(r":\s|\s(?:b['\"]|bytearray\()")


def h11_reason(exc: h11.ProtocolError) -> str:
    """h11's reason without the bytes it quotes: a peer's garbage may name a private server."""
    return f"{type(exc).__name__}: {_H11_QUOTE.split(str(exc), maxsplit=1)[0]}"


@dataclass(frozen=True)
class Url:
    """The parts of an http(s) URL a single request needs."""

    scheme: str
    host: str
    port: int
    target: str  # path + query, what goes on the request line
    host_header: str

    @classmethod
    def parse(cls, url: str) -> Url:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {url!r}")
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        host = parts.hostname
        bracketed = f"[{host}]" if ":" in host else host
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(
            scheme=parts.scheme,
            host=host,
            port=port,
            target=target,
            host_header=bracketed if port == default else f"{bracketed}:{port}",
        )


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    complete: bool  # the whole message arrived
    truncated: bool  # we stopped reading at max_bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k == wanted), None)


class HttpExchange:
    """One request and its response on a stream we own. Not reusable (``Connection: close``)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        stage: Stage = Stage.HTTP,
        max_head: int = MAX_HEAD_BYTES,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=max_head)
        self.stage = stage
        self.received = 0  # raw bytes read from the stream
        self.body_received = 0  # body bytes seen so far (kept or not)
        self.first_byte_at: float | None = None  # monotonic time of the first response byte
        self._eof = False
        self._prefix = b""

    async def send_request(
        self,
        method: str,
        url: Url,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        head = [
            ("Host", url.host_header),
            ("User-Agent", USER_AGENT),
            ("Accept", "*/*"),
            ("Connection", "close"),
            *headers,
        ]
        if body or method == "POST":
            head.append(("Content-Length", str(len(body))))
        with classified(self.stage):
            self._writer.write(self._conn.send(h11.Request(method=method, target=url.target, headers=head)))
            if body:
                self._writer.write(self._conn.send(h11.Data(data=body)))
            self._writer.write(self._conn.send(h11.EndOfMessage()))
            await self._writer.drain()

    async def _next_event(self) -> object:
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                # closed before answering, or cut in the middle of the body: eof; anything else is
                # bytes that are not an HTTP response
                cut = self._eof and (self.received == 0 or self._conn.their_state is h11.SEND_BODY)
                failure = Failure.EOF_ERROR if cut else Failure.HTTP_INVALID_RESPONSE
                raise NetFailure(failure, self.stage, h11_reason(exc)) from exc
            if event is not h11.NEED_DATA:
                return event
            if self._eof:
                raise NetFailure(Failure.EOF_ERROR, self.stage, "peer closed before a response")
            with classified(self.stage):
                data = await self._reader.read(READ_CHUNK)
            if data and self.first_byte_at is None:
                self.first_byte_at = time.monotonic()
            self._check_prefix(data)
            self.received += len(data)
            self._eof = not data
            self._conn.receive_data(data)

    def _check_prefix(self, data: bytes) -> None:
        """Fail fast on a peer speaking something else (an SSH banner, TLS, noise): h11 would wait for a
        blank line that may never come, until ``max_head`` bytes or the deadline."""
        if self.received >= len(_STATUS_PREFIX):
            return
        seen = (self._prefix + data)[: len(_STATUS_PREFIX)]
        self._prefix = seen
        if not _STATUS_PREFIX.startswith(seen):
            raise NetFailure(Failure.HTTP_INVALID_RESPONSE, self.stage, "response does not start with HTTP/")

    async def read_head(self) -> tuple[int, list[tuple[str, str]]]:
        """Status and headers of the final response (1xx skipped); header names lower-cased."""
        for _ in range(MAX_INFORMATIONAL + 1):
            event = await self._next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
                return int(event.status_code), headers
            raise NetFailure(Failure.HTTP_INVALID_RESPONSE, self.stage, f"unexpected {type(event).__name__}")
        raise NetFailure(Failure.HTTP_INVALID_RESPONSE, self.stage, "too many informational responses")

    async def read_body(self, max_bytes: int, *, keep: bool = True) -> tuple[bytes, bool, bool]:
        """Read the body up to ``max_bytes``: (kept bytes, complete, truncated).

        With ``keep=False`` the bytes are only counted (``body_received``), for transfers whose content
        does not matter.
        """
        chunks: list[bytes] = []
        while self.body_received < max_bytes:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                take = bytes(event.data[: max_bytes - self.body_received])
                self.body_received += len(take)
                if keep:
                    chunks.append(take)
                if len(take) < len(event.data):
                    return b"".join(chunks), False, True
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return b"".join(chunks), True, False
        # exactly max_bytes read: truncated unless the message ends right here (already buffered)
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError:
            event = None
        complete = isinstance(event, h11.EndOfMessage)
        return b"".join(chunks), complete, not complete

    async def fetch(self, max_bytes: int) -> HttpResponse:
        status, headers = await self.read_head()
        body, complete, truncated = await self.read_body(max_bytes)
        return HttpResponse(status, headers, body, complete, truncated)


async def request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    method: str,
    url: Url,
    *,
    max_bytes: int,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    stage: Stage = Stage.HTTP,
) -> HttpResponse:
    """Send one request and read its response (body bounded by ``max_bytes``)."""
    exchange = HttpExchange(reader, writer, stage=stage)
    await exchange.send_request(method, url, headers=headers, body=body)
    return await exchange.fetch(max_bytes)
