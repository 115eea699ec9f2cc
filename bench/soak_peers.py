"""The peers of bench/soak.py: the servers its targets reach, run in a lab namespace.

Healthy peers (``tcp``, ``tls``, ``http``) count the connections they accept, per port: soak.py compares
these with the journal, so an attempt that reached its peer but left no journal row is an attempt lost.
Hostile peers: ``endless`` sends bytes until the client goes away, ``tarpit`` sends one byte every 5 s
and never finishes, ``rst`` accepts and resets at once.

    python bench/soak_peers.py LAYOUT.json COUNTS.json

LAYOUT is ``{"cert": PEM, "key": PEM, "peers": [{"ip": .., "port": .., "role": ..}, ...]}``; COUNTS is
written on SIGTERM as ``{"ip:port": accepted}``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import socket
import ssl
import struct
import sys
from collections import Counter
from pathlib import Path
from typing import Any

CHUNK = b"\x17\x03\x03" + bytes(65533)  # looks like TLS application data to a parser that peeks
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


class Counted(asyncio.Protocol):
    """Counts itself at construction (accept time, before any TLS handshake); then plays its role."""

    def __init__(self, key: str, role: str, counts: Counter[str]) -> None:
        counts[key] += 1
        self.role = role
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.role != "http" or self.transport is None:
            return
        self.buf += data
        if b"\r\n\r\n" in self.buf or len(self.buf) > 65536:
            self.transport.write(HTTP_OK)
            self.transport.close()


async def hostile(role: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        if role == "rst":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        while True:
            if role == "endless":
                writer.write(CHUNK)
                await writer.drain()
            else:  # tarpit
                writer.write(b"\x16")
                await writer.drain()
                await asyncio.sleep(5)
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass  # the client went away, or the peers are shutting down
    finally:
        writer.transport.abort()


async def main(layout_path: Path, counts_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    layout: dict[str, Any] = json.loads(layout_path.read_bytes())  # noqa: ASYNC240 - before serving
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if layout.get("cert"):
        tls.load_cert_chain(layout["cert"], layout["key"])
    counts: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    servers: list[asyncio.AbstractServer] = []
    for peer in layout["peers"]:
        ip, port, role = peer["ip"], int(peer["port"]), peer["role"]
        key = f"{ip}:{port}"
        if role in ("tcp", "tls", "http"):

            def factory(key: str = key, role: str = role) -> Counted:
                return Counted(key, role, counts)

            ctx = tls if role == "tls" else None
            servers.append(await loop.create_server(factory, ip, port, ssl=ctx, backlog=512))
        else:

            async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter, role: str = role) -> None:
                await hostile(role, r, w)

            servers.append(await asyncio.start_server(handle, ip, port, backlog=512))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"peers listening: {len(servers)}", flush=True)
    await stop.wait()
    counts_path.write_text(json.dumps(dict(counts), sort_keys=True))  # noqa: ASYNC240 - after serving
    for server in servers:
        server.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
