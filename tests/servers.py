"""Real servers on 127.0.0.1 for probe tests: TLS, HTTP(S), hostile peers, an SNI filter, dnsmasq.

Every server binds port 0 (or a port just found free) so parallel test runs never collide, and is an
async context manager that yields its port and tears everything down on exit. They are real peers (real
TLS stacks, aiohttp, dnsmasq), never mocks: probes must meet the bytes a real network would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reachwatch.net.udp import udp_exchange

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

LOOPBACK = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on right now (tiny race with other processes; fine for loopback tests)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def rogue_ca(country: str, organization: str, common_name: str) -> trustme.CA:
    """A CA with an arbitrary subject (trustme cannot set C/CN), e.g. one named like a national root."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=9), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return trustme.CA.from_pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


@asynccontextmanager
async def tcp_server(handler: Handler, *, ssl_ctx: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """An asyncio TCP (or TLS) server running ``handler`` per connection; yields the port."""
    tasks: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass  # teardown cancels handlers still talking to a client; nothing to report
        finally:
            writer.close()
            tasks.discard(task)  # type: ignore[arg-type]

    server = await asyncio.start_server(run, LOOPBACK, 0, ssl=ssl_ctx)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)


async def blackhole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, read whatever comes, never answer (what an SNI or DPI drop looks like after connect)."""
    while await reader.read(4096):
        pass


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Wait for the first bytes (the ClientHello), then abort the connection with an RST."""
    await reader.read(1)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def hold_open(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After the TLS handshake: keep the session until the client leaves."""
    while await reader.read(4096):
        pass


@asynccontextmanager
async def sni_filter(backend_port: int, forbidden: str) -> AsyncIterator[int]:
    """A DPI box in front of a TLS server: a ClientHello naming ``forbidden`` is dropped silently,
    anything else is relayed both ways to ``backend_port``. Matches the name bytes, as real DPI does."""

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
        with contextlib.suppress(OSError):
            dst.write_eof()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await reader.read(16384)
        if forbidden.encode() in hello:
            await blackhole(reader, writer)
            return
        up_reader, up_writer = await asyncio.open_connection(LOOPBACK, backend_port)
        try:
            up_writer.write(hello)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()

    async with tcp_server(handle) as port:
        yield port


@asynccontextmanager
async def http_app(app: web.Application, *, ssl_ctx: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """An aiohttp application on 127.0.0.1:0 (HTTPS when ``ssl_ctx``); yields the port."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0, ssl_context=ssl_ctx)
    await site.start()
    try:
        server = site._server
        assert server is not None
        yield int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    finally:
        await runner.cleanup()


@asynccontextmanager
async def dnsmasq(addresses: dict[str, str], *, nxdomain: tuple[str, ...] = ()) -> AsyncIterator[int]:
    """A real dnsmasq on 127.0.0.1:<free port> answering ``addresses`` (name -> IP), NXDOMAIN for
    ``nxdomain`` names, REFUSED otherwise (it has no upstream). Yields the UDP port."""
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    for _ in range(5):
        port = free_port(socket.SOCK_DGRAM)
        args = [
            binary,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            f"--port={port}",
            f"--listen-address={LOOPBACK}",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-negcache",
            "--pid-file",
            "--user=root",
            *(f"--address=/{name}/{ip}" for name, ip in addresses.items()),
            *(f"--address=/{name}/" for name in nxdomain),
        ]
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errors)
            if await _udp_port_ready(proc, port):
                try:
                    yield port
                finally:
                    proc.terminate()
                    await asyncio.to_thread(proc.wait, 5)
                return
            proc.kill()
            await asyncio.to_thread(proc.wait, 5)
    raise RuntimeError("dnsmasq did not start")


async def _udp_port_ready(proc: subprocess.Popen[bytes], port: int) -> bool:
    """dnsmasq is up when its port is bound (a bind of our own fails)."""
    for _ in range(100):
        if proc.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                return True
        await asyncio.sleep(0.02)
    return False


@asynccontextmanager
async def doh_server(upstream_port: int, ssl_ctx: ssl.SSLContext) -> AsyncIterator[int]:
    """An RFC 8484 endpoint (POST /dns-query) over HTTPS that relays each wire query over UDP to a
    resolver on 127.0.0.1:``upstream_port`` (a dnsmasq) and returns its reply. Yields the port."""

    async def dns_query(request: web.Request) -> web.Response:
        if request.content_type != "application/dns-message":
            return web.Response(status=415)
        wire = await request.read()
        async with asyncio.timeout(3):
            reply = await udp_exchange(LOOPBACK, upstream_port, wire)
        return web.Response(body=reply, content_type="application/dns-message")

    app = web.Application()
    app.router.add_post("/dns-query", dns_query)
    async with http_app(app, ssl_ctx=ssl_ctx) as port:
        yield port


def paced_app(routes: dict[str, tuple[int, float]]) -> web.Application:
    """An aiohttp app serving, per path, ``size`` bytes at about ``rate`` bytes/second (a shaped link)."""

    def handler(size: int, rate: float) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            response.content_length = size
            await response.prepare(request)
            chunk = b"z" * PACE_CHUNK
            sent = 0
            while sent < size:
                piece = chunk[: size - sent]
                await response.write(piece)
                sent += len(piece)
                await asyncio.sleep(len(piece) / rate)
            await response.write_eof()
            return response

        return serve

    app = web.Application()
    for path, (size, rate) in routes.items():
        app.router.add_get(path, handler(size, rate))
    return app


PACE_CHUNK = 16 * 1024


def http_cut(announced: int, sent: int, *, rst: bool = False) -> Handler:
    """A raw HTTP/1.1 server that announces ``announced`` body bytes, sends ``sent``, then closes the
    connection (with an RST when ``rst``): a transfer cut in the middle."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % announced)
        writer.write(b"y" * sent)
        await writer.drain()
        await asyncio.sleep(0.05)
        if rst:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    return handle


@contextlib.contextmanager
def syn_blackhole() -> Iterator[int]:
    """A port whose SYNs go unanswered, without root: a listener with a full accept queue (backlog 0,
    one connection parked in it) makes Linux drop further SYNs, as a firewall DROP rule would."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    parked = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((LOOPBACK, 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        parked.connect((LOOPBACK, port))
        yield port
    finally:
        parked.close()
        listener.close()
