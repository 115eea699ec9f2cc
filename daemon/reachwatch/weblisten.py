"""The web listener: accepts connections for the aiohttp app within limits a peer cannot push.

Why not aiohttp's ``TCPSite``: it accepts every connection and keeps an idle or header-trickling one for
an hour (its keep-alive default), so ~1,000 sockets from anyone who can reach the port exhaust the
process's descriptors, and then every PROBE fails (``unknown_failure``): the vantage goes blind without
a password. Here:

- the descriptor budget is known: the soft ``RLIMIT_NOFILE`` is raised toward the hard one (the unit sets
  ``LimitNOFILE``), and the listener's connection cap stays below it with the probes' share reserved
  (``probe_descriptor_reserve``); a connection over the cap is accepted and closed at once, counted,
  and logged once per episode;
- every connection has deadlines: the TLS handshake, a complete request (headers) within
  ``request_timeout`` of connecting or of the last response (aiohttp's keep-alive timer, which also
  closes idle and trickling connections), and a total lifetime that bounds a peer that never reads;
- header size is bounded (``max_field_size`` x ``max_headers``); an oversized header is answered 431 and
  a malformed request 400, each with ONE log line naming the peer and the reason, never the bytes sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong

from reachwatch.errors import ConfigError

log = structlog.get_logger(__name__)

# what the daemon tries to give itself; the unit's LimitNOFILE says the same
NOFILE_TARGET = 8192
# descriptors an attempt may hold (sockets, a child's pipes) and what the daemon holds besides probes
# (journal, logs, tor's control connection, the listener itself)
FDS_PER_ATTEMPT = 4
BASE_RESERVE = 64
MIN_CONNECTIONS = 4  # so a scrape still gets in when the budget is tight
QUIET_AFTER_FLOOD = 10.0  # seconds without a refused connection before "limit cleared" is logged


@dataclass(frozen=True)
class ListenerLimits:
    """Per-connection limits; the defaults fit Prometheus, Grafana and a person with curl."""

    max_connections: int = 128
    tls_handshake_timeout: float = 10.0
    request_timeout: float = 15.0  # connect (or last response) to a complete request; idle keep-alive
    max_lifetime: float = 300.0  # any connection, however busy: bounds a peer that never reads
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 32


def raise_nofile_limit(target: int = NOFILE_TARGET) -> int:
    """Raise the soft descriptor limit toward ``target`` (never above the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def probe_descriptor_reserve(max_concurrency: int) -> int:
    """Descriptors kept for the probes and the daemon itself, never given to web connections."""
    return FDS_PER_ATTEMPT * max_concurrency + BASE_RESERVE


def connection_cap(limits: ListenerLimits, nofile: int, reserve: int) -> int:
    """The most connections the listener holds: the configured cap, within the descriptor budget."""
    return max(MIN_CONNECTIONS, min(limits.max_connections, nofile - reserve))


class _Handler(web.RequestHandler):
    """aiohttp's connection handler, with errors answered without logging what the peer sent."""

    def __init__(self, manager: web.Server, on_lost: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._on_lost = on_lost

    def connection_lost(self, exc: BaseException | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            self._on_lost()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            # parser errors quote the offending bytes: log the kind only
            too_large = isinstance(exc, LineTooLong) or (
                isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc.message)
            )
            status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE if too_large else HTTPStatus.BAD_REQUEST
            log.warning(
                "web_request_rejected", status=int(status), reason=type(exc).__name__, peer=_peer(request)
            )
        else:  # a bug in a handler: the middleware catches the expected ones
            log.error("web_request_failed", error=type(exc).__name__ if exc else None, path=request.path)
        status = HTTPStatus(status)
        resp = web.Response(status=status, text=f"{status.value} {status.phrase}\n")
        resp.force_close()
        return resp


def _peer(request: web.BaseRequest) -> str | None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class Listener:
    """Listening sockets that feed accepted connections to ``server`` (an aiohttp ``web.Server``)."""

    def __init__(
        self,
        server: web.Server,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        limits: ListenerLimits,
        cap: int,
    ) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.limits = limits
        self.cap = cap
        self.open_connections = 0
        self.refused = 0  # accepted and closed at once: over the cap
        self._full = False
        self._last_refused = 0.0
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._serving: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind and listen; raises ``OSError``."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        seen: set[tuple[Any, ...]] = set()
        try:
            for family, kind, proto, _, resolved in infos:
                if (family, resolved) in seen:
                    continue
                seen.add((family, resolved))
                address = resolved
                sock = socket.socket(family, kind, proto)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if self.port == 0 and len(self._sockets) > 1:  # one ephemeral port for every address
                    address = (address[0], self._sockets[0].getsockname()[1], *address[2:])
                sock.bind(address)
                sock.listen(128)
                sock.setblocking(False)
        except OSError:
            self._close_sockets()
            raise
        self.port = int(self._sockets[0].getsockname()[1])
        self._accepting = [loop.create_task(self._accept(s)) for s in self._sockets]

    async def close(self) -> None:
        """Stop accepting and close every connection."""
        for task in self._accepting:
            task.cancel()
        for task in self._accepting:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._accepting = []
        self._close_sockets()
        for task in list(self._serving):
            task.cancel()
        if self._serving:
            await asyncio.gather(*self._serving, return_exceptions=True)

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listening)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # out of descriptors (probes hold them): wait rather than spin
                    log.warning("web_accept_failed", error=exc.strerror)
                    await asyncio.sleep(1.0)
                continue
            now = loop.time()
            if self.open_connections >= self.cap:
                conn.close()
                self.refused += 1
                self._last_refused = now
                if not self._full:
                    self._full = True
                    log.warning("web_connection_limit_reached", limit=self.cap)
                continue
            if self._full and now - self._last_refused > QUIET_AFTER_FLOOD:
                # one line per episode: a flood hovering at the cap must not log every freed slot
                self._full = False
                log.info("web_connection_limit_cleared", limit=self.cap, refused_total=self.refused)
            self.open_connections += 1
            task = loop.create_task(self._serve(conn))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        lost = asyncio.Event()
        limits = self.limits
        transport: asyncio.BaseTransport | None = None
        try:
            conn.setblocking(False)

            def factory() -> _Handler:
                return _Handler(
                    self.server,
                    lost.set,
                    loop=loop,
                    keepalive_timeout=limits.request_timeout,
                    access_log=None,
                    max_line_size=limits.max_line_size,
                    max_field_size=limits.max_field_size,
                    max_headers=limits.max_headers,
                )

            async with asyncio.timeout(limits.tls_handshake_timeout + 1.0):
                transport, _ = await loop.connect_accepted_socket(
                    factory,
                    sock=conn,
                    ssl=self.ssl_context,
                    ssl_handshake_timeout=limits.tls_handshake_timeout if self.ssl_context else None,
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(limits.max_lifetime):
                    await lost.wait()
        except (OSError, ssl.SSLError, TimeoutError):
            pass  # a failed or slow TLS handshake: nothing to report, the socket is closed below
        finally:
            if transport is not None and not lost.is_set():
                transport.abort()  # type: ignore[attr-defined]
            elif transport is None:
                conn.close()
            self.open_connections -= 1


class ServedApp:
    """An aiohttp app behind a started ``Listener`` (the daemon's web server, the canary's metrics): the
    runner and the listener are set up, bound and stopped together, and a port that cannot be bound is
    the operator's config error, named once here for both."""

    def __init__(self, runner: web.AppRunner, listener: Listener) -> None:
        self.runner = runner
        self.listener = listener

    @classmethod
    async def start(
        cls,
        app: web.Application,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        limits: ListenerLimits,
        cap: int,
        field: str,
        address: str,
    ) -> ServedApp:
        """Serve ``app`` on ``host``:``port``; ``ConfigError`` naming ``field`` (the config field that gave
        ``address``) when the address cannot be bound, with nothing left set up."""
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        assert runner.server is not None
        listener = Listener(runner.server, host, port, ssl_context=ssl_context, limits=limits, cap=cap)
        try:
            await listener.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(field, f"cannot listen on {address}: {exc.strerror or exc}") from None
        return cls(runner, listener)

    async def close(self) -> None:
        """Stop accepting, close every connection, then the app's runner."""
        await self.listener.close()
        await self.runner.cleanup()
