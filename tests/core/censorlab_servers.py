"""The servers of the censor lab, run as one process inside a lab namespace (abroad or on the router).

``python censorlab_servers.py SPEC.json READY_FILE`` starts every service listed in the JSON spec, then
creates ``READY_FILE`` so the test knows all sockets are bound. Services (all real protocol peers):

- ``http``: aiohttp (HTTPS with ``cert``), ``GET /`` answers a short page, ``GET /blob`` streams ``blob``
  bytes (the throughput probe's download);
- ``tls``: a TLS server presenting ``cert`` (a PEM with key and chain): the real server abroad, or the
  censor's interception box presenting a certificate from a rogue national root;
- ``page``: the censor's block page responder: every ``GET`` answers the bytes of ``file`` with
  ``content_type`` (a Russian page in UTF-8 or Windows-1251);
- ``forger``: a path attacker answering in the reference vantage's place (HTTPS with ``cert``, a
  certificate the vantage trusts: TLS misconfigured, or a root the censor controls): a v2 observations
  answer saying every name in ``targets`` was reached just now, echoing the nonce, signed with its own key;
- ``doh``: RFC 8484 ``POST /dns-query`` over HTTPS, relayed over UDP to a real resolver (``upstream``);
- ``sni_relay``: a transparent TCP relay for connections the router redirected to it (nftables
  ``redirect``): it reads the first data (the ClientHello) and, when it contains ``forbidden``, forwards
  nothing more and stays silent (DPI "drop after ClientHello"); otherwise it connects to the original
  destination (``SO_ORIGINAL_DST``) and relays both ways.

Reads are bounded: a handler reads in chunks and keeps nothing it does not forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import ssl
import struct
import sys
import time
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reachwatch import refproto

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h: the pre-NAT destination of a redirected connection
CHUNK = 64 * 1024


def _tls_context(cert: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert)  # one PEM with the key and the chain (trustme's private_key_and_cert_chain)
    return ctx


async def _drain(reader: asyncio.StreamReader) -> None:
    """Read and discard until the peer leaves (bounded: nothing is kept)."""
    while await reader.read(CHUNK):
        pass


async def _handle(handler: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await handler(reader, writer)
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass  # a probe that gave up mid-handshake is normal here
    finally:
        writer.close()


async def _tls_server(spec: dict[str, Any]) -> asyncio.Server:
    return await asyncio.start_server(
        lambda r, w: _handle(_drain, r, w), spec["host"], spec["port"], ssl=_tls_context(spec["cert"])
    )


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        dst.write_eof()


def _original_destination(writer: asyncio.StreamWriter) -> tuple[str, int]:
    sock: socket.socket = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack_from("!H", raw, 2)[0]
    return socket.inet_ntoa(raw[4:8]), int(port)


async def _sni_relay(spec: dict[str, Any]) -> asyncio.Server:
    forbidden = spec["forbidden"].encode()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(16 * 1024)
        if forbidden in first:
            await _drain(reader)  # the ClientHello named the forbidden site: silence from now on
            return
        host, port = _original_destination(writer)
        up_reader, up_writer = await asyncio.open_connection(host, port)
        try:
            up_writer.write(first)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()

    return await asyncio.start_server(lambda r, w: _handle(relay, r, w), spec["host"], spec["port"])


async def _http_site(spec: dict[str, Any], app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    ssl_ctx = _tls_context(spec["cert"]) if spec.get("cert") else None
    await web.TCPSite(runner, spec["host"], spec["port"], ssl_context=ssl_ctx).start()
    return runner


def _http_app(blob: int) -> web.Application:
    async def index(request: web.Request) -> web.Response:
        return web.Response(text="reachwatch censor lab\n")

    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = blob
        await response.prepare(request)
        chunk, sent = b"z" * CHUNK, 0
        while sent < blob:
            piece = chunk[: blob - sent]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/blob", download)
    return app


def _page_app(body: bytes, content_type: str) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    return app


def _forger_app(targets: list[str]) -> web.Application:
    key = Ed25519PrivateKey.generate()  # not the reference's: the attacker does not have that one

    async def observations(request: web.Request) -> web.Response:
        now = time.time()
        entries = [
            {
                "name": n,
                "kind": "tcp",
                "destination": None,
                "observed_at": now,
                "success": True,
                "failure": None,
                "stage": None,
                "stage_durations": {"connect": 0.01},
                "facts": {},
            }
            for n in targets
        ]
        body = refproto.build_envelope(entries, vantage="abroad", nonce=request.query.get("nonce"), key=key)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get(refproto.PATH, observations)
    return app


def _doh_app(upstream: str) -> web.Application:
    host, _, port = upstream.rpartition(":")

    async def dns_query(request: web.Request) -> web.Response:
        if request.content_type != "application/dns-message":
            return web.Response(status=415)
        query = dns.message.from_wire(await request.content.read(4096))
        reply = await dns.asyncquery.udp(query, host, port=int(port), timeout=2)
        return web.Response(body=reply.to_wire(), content_type="application/dns-message")

    app = web.Application()
    app.router.add_post("/dns-query", dns_query)
    return app


async def main(spec_path: Path, ready: Path) -> None:
    services: list[dict[str, Any]] = json.loads(spec_path.read_text())
    servers: list[asyncio.Server] = []
    runners: list[web.AppRunner] = []
    for spec in services:
        kind = spec["type"]
        if kind == "tls":
            servers.append(await _tls_server(spec))
        elif kind == "sni_relay":
            servers.append(await _sni_relay(spec))
        elif kind == "http":
            runners.append(await _http_site(spec, _http_app(int(spec.get("blob", 0)))))
        elif kind == "page":
            app = _page_app(Path(spec["file"]).read_bytes(), spec["content_type"])
            runners.append(await _http_site(spec, app))
        elif kind == "forger":
            runners.append(await _http_site(spec, _forger_app(spec["targets"])))
        elif kind == "doh":
            runners.append(await _http_site(spec, _doh_app(spec["upstream"])))
        else:
            raise ValueError(f"unknown service type {kind!r}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready.write_text("ready\n")
    await stop.wait()
    for server in servers:
        server.close()
    for runner in runners:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
