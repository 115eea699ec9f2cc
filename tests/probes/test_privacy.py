"""Private targets of every TCP kind: whatever the peer does, the attempt's published record (what the
API, the journal, ``check --json`` and metrics are built from) never holds the address or the name.

The peer here answers every connection with a line of garbage and closes: each probe connects (so the
``ip`` fact is decided), then fails in its own protocol step."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from reachwatch.probes import PROBES
from tests.probes.util import run
from tests.servers import tcp_server

HOST = "localhost"  # resolves to a loopback address: both the name and the address must stay out
CANARY = {"host": "canary.invalid", "port": 7}


def targets(port: int) -> dict[str, dict[str, Any]]:
    url = f"//{HOST}:{port}/"
    return {
        "tcp": {"host": HOST, "port": port},
        "tls": {"host": HOST, "port": port},
        "http": {"url": "http:" + url},
        "https": {"url": "https:" + url},
        "throughput": {"url": "http:" + url, "control_url": "http:" + url},
        "socks5": {"host": HOST, "port": port, "canary": CANARY},
        "http_proxy": {"host": HOST, "port": port, "canary": CANARY},
        "shadowsocks": {"host": HOST, "port": port, "password_env": "RW_TEST_SS", "canary": CANARY},
        "openconnect": {"host": HOST, "port": port},
        "tor_relay": {"host": HOST, "port": port, "fingerprint": "A" * 40},
        "tor_dirport": {"host": HOST, "port": port, "fingerprint": "B" * 40},
    }


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"\x16garbage from a private server at localhost 127.0.0.1\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("kind", sorted(targets(1)))
async def test_private_target_record_holds_neither_address_nor_name(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kind in PROBES
    monkeypatch.setenv("RW_TEST_SS", "not-the-key")
    async with tcp_server(garbage) as port:
        result = await run(
            {"kind": kind, **targets(port)[kind], "private": True}, timeout=3.0, base_dir=tmp_path
        )
    assert "connect" in result.stage_durations  # it got as far as the address
    published = json.dumps(result.to_dict())
    for value in (HOST, "127.0.0.1", "::1"):
        assert value not in published, (kind, value, published)
