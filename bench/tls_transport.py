"""CPU per TLS handshake: asyncio streams + ``start_tls`` (what ``net.tls`` does) against a bare
``asyncio.Protocol`` driving an ``ssl.SSLObject`` over memory BIOs (no StreamReader/StreamWriter, no
SSL transport).

    .venv/bin/python bench/tls_transport.py [--n 3000] [--in-flight 50] [--rounds 3]

Both ways connect to one local TLS server (a uvloop process, a trustme certificate, as bench/sweep.py),
verify the chain against the test CA, read what ``net.tls`` reads after a handshake (version, cipher,
ALPN, the presented chain) and abort the connection. They alternate, ``--rounds`` times, on uvloop when
it is installed. The question it answers: would a lower-level TLS path cut the ``tls`` probe's CPU
(issue 9's CPU-per-probe goal)? See bench/README.md for the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import trustme

SNI = "bench.test"
SERVER = r"""
import asyncio, ssl, sys
import uvloop
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
async def handle(reader, writer):
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
uvloop.run(main())
"""


def _read_session(sslobj: ssl.SSLObject) -> None:
    """What ``net.tls.tls_handshake`` reads from a completed handshake."""
    sslobj.version()
    sslobj.cipher()
    sslobj.selected_alpn_protocol()
    sslobj._sslobj.get_unverified_chain()  # type: ignore[attr-defined]  # private in 3.11, as net.tls


async def via_streams(port: int, ctx: ssl.SSLContext) -> None:
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=65536)
    await writer.start_tls(ctx, server_hostname=SNI)
    sslobj = writer.get_extra_info("ssl_object")
    _read_session(sslobj)
    writer.transport.abort()


class _Handshake(asyncio.Protocol):
    """Drives one client handshake over memory BIOs; ``done`` gets the SSLObject or the error."""

    def __init__(self, ctx: ssl.SSLContext, done: asyncio.Future[ssl.SSLObject]) -> None:
        self.done = done
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.sslobj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=SNI)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport, but has its methods
        self.transport = cast(asyncio.Transport, transport)
        self._step()

    def _step(self) -> None:
        finished = False
        try:
            self.sslobj.do_handshake()
            finished = True
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLError, OSError) as exc:
            if not self.done.done():
                self.done.set_exception(exc)
        data = self.outgoing.read()
        if data and self.transport is not None:
            self.transport.write(data)
        if finished and not self.done.done():
            self.done.set_result(self.sslobj)

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        self._step()

    def eof_received(self) -> None:
        self.incoming.write_eof()
        self._step()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionResetError("closed during the handshake"))


async def via_protocol(port: int, ctx: ssl.SSLContext) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[ssl.SSLObject] = loop.create_future()
    transport, _ = await loop.create_connection(lambda: _Handshake(ctx, done), "127.0.0.1", port)
    _read_session(await done)
    transport.abort()


async def cpu_per_handshake(
    way: Callable[[int, ssl.SSLContext], Awaitable[None]], port: int, ctx: ssl.SSLContext, n: int, width: int
) -> float:
    gate = asyncio.Semaphore(width)

    async def one() -> None:
        async with gate:
            await way(port, ctx)

    await asyncio.gather(*(one() for _ in range(width)))  # warm-up
    cpu0 = time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    return (time.process_time() - cpu0) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=3000, help="handshakes per way and round")
    ap.add_argument("--in-flight", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ca = trustme.CA()
        cert = ca.issue_cert(SNI)
        ca_file, cert_file, key_file = (Path(tmp) / name for name in ("ca.pem", "cert.pem", "key.pem"))
        ca.cert_pem.write_to_path(str(ca_file))
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(cert_file), str(key_file)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            ctx = ssl.create_default_context(cafile=str(ca_file))
            try:
                import uvloop  # noqa: PLC0415 - optional, as in the daemon

                runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
            except ImportError:
                runner = asyncio.Runner()
            with runner:
                for _ in range(args.rounds):
                    for name, way in (
                        ("streams + start_tls", via_streams),
                        ("bare Protocol + SSLObject", via_protocol),
                    ):
                        cpu = runner.run(cpu_per_handshake(way, port, ctx, args.n, args.in_flight))
                        print(f"{name:<28}{cpu * 1e6:8.0f} us CPU per handshake")
        finally:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
