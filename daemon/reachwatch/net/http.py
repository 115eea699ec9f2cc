"""THE HTTP/1.1 exchange of reachwatch: requests and responses over an open (TCP or TLS) stream, with h11.

Every HTTP message reachwatch reads goes through :class:`HttpExchange`: the ``http``/``https`` and
``throughput`` probes, DoH, the Tor DirPort GET, HTTP CONNECT (``net/http_connect.py``) and the requests
sent through an established stream (OpenConnect's XML exchange, with keep-alive between rounds). h11 does
the parsing (no hand-rolled HTTP); this module feeds it bounded reads and turns its verdicts into the
failure vocabulary, at the stage the caller gives:

- a head (status line + headers) larger than ``max_head`` bytes or ``MAX_HEAD_LINES`` lines is the
  exchange's ``oversized`` failure (``http_invalid_response`` by default: the ``http`` probe's documented
  outcome; the proxy and VPN exchanges ask for ``response_too_large``), and so is a chunk-size or trailer
  line that never ends; bytes that are not HTTP at all are ``http_invalid_response``;
- ``read_body`` reads up to ``max_bytes`` and then stops (``truncated``), so an endless body costs
  ``max_bytes`` of memory, never more; ``read_whole_body`` wants the whole message within a limit and
  calls anything longer ``response_too_large``;
- a peer that closes before the response, or before the body announced by ``Content-Length``/chunking is
  complete, is ``eof_error`` (a reset is ``connection_reset``), which the throughput probe reports as a
  cut transfer.

Time is bounded by the caller's deadline (a tarpit sending one byte a second ends there); ``received``
and ``body_received`` stay readable after a timeout so the caller can report partial progress.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import h11

from reachwatch.config.types import Url
from reachwatch.failures import Failure, Stage
from reachwatch.net.errors import NetFailure, classified

MAX_HEAD_BYTES = 16 * 1024
MAX_HEAD_LINES = 100  # status line + header lines; real servers send a few dozen at most
READ_CHUNK = 16 * 1024
# 1xx responses before the final one; a server sending more is playing games with us
MAX_INFORMATIONAL = 8
USER_AGENT = "reachwatch/0.1"
# sent unless the caller names a header of the same name (a user's own User-Agent replaces ours)
DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (("User-Agent", USER_AGENT), ("Accept", "*/*"))
_STATUS_PREFIX = b"HTTP/"
# h11's hint on "Receive buffer too long": an incomplete head, chunk line or trailer over the bound
_H11_TOO_LONG = 431


# where h11's message stops being its reason and starts quoting the offending bytes
# ("illegal header line: bytearray(b'...')", "Illegal header value b'...'")
_H11_QUOTE = re.compile(r":\s|\s(?:b['\"]|bytearray\()")


def h11_reason(exc: h11.ProtocolError) -> str:
    """h11's reason without the bytes it quotes: a peer's garbage may name a private server."""
    return f"{type(exc).__name__}: {_H11_QUOTE.split(str(exc), maxsplit=1)[0]}"


@dataclass(frozen=True)
class HttpHead:
    """Status line and headers of one response; names lower-cased, order and repeats kept."""

    status: int
    reason: str
    # Set-Cookie may repeat and must not be folded into one value (RFC 6265 section 3)
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of ``name``, if any."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k == wanted), None)

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for k, v in self.headers if k == wanted]

    def content_length(self) -> int | None:
        value = self.header("content-length")
        if value is None:
            return None
        try:
            length = int(value)
        except ValueError:  # h11 has already refused a malformed one; this is belt and braces
            return None
        return length if length >= 0 else None


@dataclass
class HttpResponse:
    head: HttpHead
    body: bytes
    complete: bool  # the whole message arrived
    truncated: bool  # we stopped reading at max_bytes

    @property
    def status(self) -> int:
        return self.head.status

    def header(self, name: str) -> str | None:
        return self.head.header(name)


def _merge_headers(
    defaults: Sequence[tuple[str, str]], headers: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """``defaults`` minus the names ``headers`` sets, then ``headers``."""
    named = {name.lower() for name, _ in headers}
    return [(k, v) for k, v in defaults if k.lower() not in named] + list(headers)


class HttpExchange:
    """Requests and their responses on a stream we own, one at a time.

    Without ``keep_alive`` each request carries ``Connection: close`` and the exchange serves one round;
    with it, another request may follow once a response was read whole.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        stage: Stage = Stage.HTTP,
        max_head: int = MAX_HEAD_BYTES,
        oversized: Failure = Failure.HTTP_INVALID_RESPONSE,
        keep_alive: bool = False,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=max_head)
        self.stage = stage
        self._oversized = oversized
        self._keep_alive = keep_alive
        self.received = 0  # raw bytes read from the stream
        self.body_received = 0  # body bytes of the current response seen so far (kept or not)
        self.first_byte_at: float | None = None  # monotonic time of the first response byte
        self._eof = False
        self._round_received = 0  # raw bytes read since the current request was sent
        self._prefix = b""

    async def send_request(
        self,
        method: str,
        url: Url,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        defaults: Sequence[tuple[str, str]] = DEFAULT_HEADERS,
    ) -> None:
        """Send one request; ``headers`` replace same-named ``defaults``.

        On a keep-alive exchange a later request follows a response read whole (``read_whole_body``).
        """
        if self._conn.our_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):  # a round before this one
            self._next_round()
        head = [("Host", url.host_header), *_merge_headers(defaults, headers)]
        if not self._keep_alive:
            head.append(("Connection", "close"))
        if body or method == "POST":
            head.append(("Content-Length", str(len(body))))
        with classified(self.stage):
            self._writer.write(self._conn.send(h11.Request(method=method, target=url.target, headers=head)))
            if body:
                self._writer.write(self._conn.send(h11.Data(data=body)))
            self._writer.write(self._conn.send(h11.EndOfMessage()))
            await self._writer.drain()

    def _next_round(self) -> None:
        """Ready a keep-alive connection for another request; ``eof_error`` if the server ends it."""
        try:
            self._conn.start_next_cycle()
        except h11.LocalProtocolError as exc:  # its answer said Connection: close, or was HTTP/1.0
            raise NetFailure(Failure.EOF_ERROR, self.stage, "server closes the connection") from exc
        self.body_received = 0
        self._round_received = 0
        # bytes already buffered belong to the next response: h11 judges them, the prefix check does not
        self._prefix = _STATUS_PREFIX if self._conn.trailing_data[0] else b""

    def tunnel_data(self) -> bytes:
        """After a 2xx answer to CONNECT: tunnel bytes that arrived with the head (the caller owns them)."""
        return bytes(self._conn.trailing_data[0])

    async def _next_event(self) -> object:
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise self._protocol_failure(exc) from exc
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
            self._round_received += len(data)
            self._eof = not data
            self._conn.receive_data(data)

    def _protocol_failure(self, exc: h11.RemoteProtocolError) -> NetFailure:
        """What h11's refusal means: cut (eof), over our bound (``oversized``) or not HTTP."""
        if exc.error_status_hint == _H11_TOO_LONG:
            return NetFailure(self._oversized, self.stage, "response head or chunk line over the bound")
        # closed before answering, or cut in the middle of the body: eof; anything else is bytes that
        # are not an HTTP response
        cut = self._eof and (self._round_received == 0 or self._conn.their_state is h11.SEND_BODY)
        failure = Failure.EOF_ERROR if cut else Failure.HTTP_INVALID_RESPONSE
        return NetFailure(failure, self.stage, h11_reason(exc))

    def _check_prefix(self, data: bytes) -> None:
        """Fail fast on a peer speaking something else (an SSH banner, TLS, noise): h11 would wait for a
        blank line that may never come, until ``max_head`` bytes or the deadline."""
        if len(self._prefix) >= len(_STATUS_PREFIX):
            return
        self._prefix = (self._prefix + data)[: len(_STATUS_PREFIX)]
        if not _STATUS_PREFIX.startswith(self._prefix):
            raise NetFailure(Failure.HTTP_INVALID_RESPONSE, self.stage, "response does not start with HTTP/")

    async def read_head(self) -> HttpHead:
        """Status and headers of the final response (1xx skipped)."""
        for _ in range(MAX_INFORMATIONAL + 1):
            event = await self._next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                if len(event.headers) + 1 > MAX_HEAD_LINES:
                    raise NetFailure(self._oversized, self.stage, f"more than {MAX_HEAD_LINES} head lines")
                headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
                return HttpHead(int(event.status_code), event.reason.decode("latin-1"), headers)
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

    async def read_whole_body(self, head: HttpHead, limit: int) -> bytes:
        """The complete body of ``head``'s response; ``response_too_large`` beyond ``limit`` bytes."""
        length = head.content_length()
        if length is not None and length > limit:
            raise NetFailure(Failure.RESPONSE_TOO_LARGE, self.stage, f"body of {length} bytes")
        chunks: list[bytes] = []
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                self.body_received += len(event.data)
                if self.body_received > limit:
                    raise NetFailure(Failure.RESPONSE_TOO_LARGE, self.stage, f"more than {limit} body bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return b"".join(chunks)

    async def fetch(self, max_bytes: int) -> HttpResponse:
        head = await self.read_head()
        body, complete, truncated = await self.read_body(max_bytes)
        return HttpResponse(head, body, complete, truncated)


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
