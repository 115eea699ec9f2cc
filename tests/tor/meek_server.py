"""A meek server for the tests: Tor's byte stream carried in HTTPS request and response bodies.

Debian ships meek's client (``meek_lite`` in obfs4proxy) but no meek server, so this is one, written from
the protocol as meek's design documents and the client describe it (not from meek-server's code):

- the client POSTs to the bridge URL (through a front, when given: the TLS name is the front's and the
  ``Host`` header names this server); every request carries ``X-Session-Id`` (an opaque token, 32 hex
  characters from meek_lite), the same for one Tor connection;
- a request body is what the client's side of the Tor connection sent since its last request (at most
  64 KiB; empty for a poll), and the 200 response body is what came back from the bridge since (at most
  64 KiB, which is also all the client reads);
- the client polls: at once after a request that moved data, then after 100 ms growing by half up to 5 s
  while idle; it treats anything but 200 as a failure (and retries after 30 s);
- the server keeps one connection to the bridge's ORPort per session id and drops a session idle for
  ``SESSION_IDLE`` seconds; a GET answers a short page, as meek's servers do for anyone who looks.

A response waits at most ``TURNAROUND`` for the bridge's answer to the bytes just sent, and then takes
whatever else is already there; an idle poll returns at once with an empty body. Reads are bounded: a
session holds at most one response's worth of the bridge's bytes.

``python meek_server.py CERT_PEM UPSTREAM_PORT READY_FILE`` listens on 127.0.0.1 (an ephemeral port written
to READY_FILE) and relays to 127.0.0.1:UPSTREAM_PORT; ``MeekServer`` runs it in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

MAX_PAYLOAD = 0x10000
TURNAROUND = 0.05  # how long a response waits for the bridge's answer to the bytes it just sent
SESSION_IDLE = 120.0
MAX_SESSION_ID = 64


@dataclass
class _Session:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    last_seen: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class MeekServer:
    """The HTTPS side of meek, relaying each session to the bridge at ``upstream``."""

    def __init__(self, upstream: tuple[str, int], cert_pem: Path) -> None:
        self.upstream = upstream
        self.cert_pem = cert_pem
        self.sessions: dict[str, _Session] = {}
        self.requests = 0
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._reaper: asyncio.Task[None] | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        app = web.Application(client_max_size=MAX_PAYLOAD)
        app.router.add_post("/", self._post)
        app.router.add_get("/", self._get)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(str(self.cert_pem))
        site = web.TCPSite(self._runner, host, port, ssl_context=tls)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = int(server.sockets[0].getsockname()[1])
        self._reaper = asyncio.create_task(self._reap())
        return self.port

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for session in self.sessions.values():
            session.writer.close()
        self.sessions.clear()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _get(self, request: web.Request) -> web.Response:
        return web.Response(text="I am just a happy little web server.\n")

    async def _post(self, request: web.Request) -> web.Response:
        self.requests += 1
        session_id = request.headers.get("X-Session-Id", "")
        if not 0 < len(session_id) <= MAX_SESSION_ID or not session_id.isascii():
            return web.Response(status=400, text="bad request\n")
        body = await request.read()
        session = self.sessions.get(session_id)
        if session is None:
            try:
                reader, writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return web.Response(status=502, text="bridge unreachable\n")
            session = self.sessions[session_id] = _Session(reader, writer)
        async with session.lock:  # one request at a time per session keeps the stream in order
            session.last_seen = time.monotonic()
            try:
                if body:
                    session.writer.write(body)
                    await session.writer.drain()
                answer = await self._collect(session.reader, wait=TURNAROUND if body else 0.0)
            except OSError:
                answer = None
            if answer is None:  # the bridge closed the connection: the session is over
                self.sessions.pop(session_id, None)
                session.writer.close()
                return web.Response(status=404, text="session closed\n")
        return web.Response(body=answer, content_type="application/octet-stream")

    @staticmethod
    async def _collect(reader: asyncio.StreamReader, wait: float) -> bytes | None:
        """What the bridge sent, up to ``MAX_PAYLOAD``: wait ``wait`` for a first chunk, then take what is
        already buffered. ``None`` when the bridge closed."""
        out = bytearray()
        try:
            async with asyncio.timeout(max(wait, 0.001)):
                chunk = await reader.read(MAX_PAYLOAD)
                if not chunk:
                    return None
                out += chunk
        except TimeoutError:
            return bytes(out)
        while len(out) < MAX_PAYLOAD:
            try:
                async with asyncio.timeout(0.001):
                    chunk = await reader.read(MAX_PAYLOAD - len(out))
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(SESSION_IDLE / 4)
            now = time.monotonic()
            for session_id, session in list(self.sessions.items()):
                if now - session.last_seen > SESSION_IDLE and not session.lock.locked():
                    self.sessions.pop(session_id, None)
                    session.writer.close()


async def _main(cert_pem: Path, upstream_port: int, ready: Path) -> None:
    server = MeekServer(("127.0.0.1", upstream_port), cert_pem)
    port = await server.start()
    ready.write_text(f"{port}\n")
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
    await server.close()


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])))
