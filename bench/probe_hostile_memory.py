"""Peak Python heap (tracemalloc) of one http/throughput attempt against endless peers on 127.0.0.1.

Shows that memory follows the configured bounds (max_bytes, the 16 KiB head limit), not what the peer
sends. Run: PYTHONPATH=. .venv/bin/python bench/probe_hostile_memory.py
"""

from __future__ import annotations

import asyncio
import tracemalloc

from tests.probes.util import run
from tests.servers import tcp_server


def endless(prefix: bytes, filler: bytes):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(prefix)
        while True:
            writer.write(filler)
            await writer.drain()

    return handle


async def measure(label: str, prefix: bytes, filler: bytes, target: dict[str, object]) -> None:
    async with tcp_server(endless(prefix, filler)) as port:
        data = {k: (v.format(port=port) if isinstance(v, str) else v) for k, v in target.items()}
        tracemalloc.start()
        tracemalloc.reset_peak()
        result = await run(data, timeout=10)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    received = result.facts.get("received_bytes", result.facts.get("transfer_bytes"))
    print(
        f"{label:42s} failure={result.failure!s:24s} received={received!s:>10s}",
        f"peak_heap={peak / 1024:8.0f} KiB",
    )


async def main() -> None:
    body = b"HTTP/1.1 200 OK\r\n\r\n"
    for max_bytes in (64 * 1024, 1024 * 1024, 8 * 1024 * 1024):
        await measure(
            f"http endless body, max_bytes={max_bytes // 1024} KiB",
            body,
            b"b" * 65536,
            {"kind": "http", "url": "http://127.0.0.1:{port}/", "max_bytes": max_bytes},
        )
    await measure(
        "http endless headers",
        b"HTTP/1.1 200 OK\r\n",
        b"X-F: " + b"a" * 1000 + b"\r\n",
        {"kind": "http", "url": "http://127.0.0.1:{port}/"},
    )
    await measure(
        "throughput 16 MiB from an endless body",
        body,
        b"b" * 65536,
        {
            "kind": "throughput",
            "url": "http://127.0.0.1:{port}/",
            "control_url": "http://127.0.0.1:{port}/",
            "size": 16 * 1024 * 1024,
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
