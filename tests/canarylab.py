"""A real ``reachwatch canary`` for tests: in-process (``Canary`` on 127.0.0.1) or its section and secret
for a ``reachwatch canary`` process (the netns and observability labs).

Ports are found free just before binding (the small race of ``tests.servers.free_port``); the canary is
closed when the block ends.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from reachwatch.canaryd import Canary
from reachwatch.config.canary_service import CanaryServiceConfig
from reachwatch.formats import canary as wire
from tests.servers import LOOPBACK, free_port

SECRET = "lab-canary-secret-0123456789abcdef"
KEY = wire.derive_key(SECRET.encode())


def secret_file(tmp: Path, name: str = "canary.secret", content: str = SECRET) -> Path:
    path = tmp / name
    path.write_text(content + "\n")
    path.chmod(0o600)
    return path


def free_ports(count: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port(kind))
    return sorted(ports)


def section(
    tmp: Path, tcp: Sequence[int], udp: Sequence[int], addresses: Sequence[str] = (LOOPBACK,), **extra: Any
) -> dict[str, Any]:
    """A ``canary:`` section as YAML data (for config files)."""
    return {
        "listen_addresses": list(addresses),
        "tcp_ports": list(tcp),
        "udp_ports": list(udp),
        "secret_file": str(secret_file(tmp)),
        **extra,
    }


@asynccontextmanager
async def running_canary(
    tmp: Path,
    tcp: Sequence[int],
    udp: Sequence[int],
    addresses: Sequence[str] = (LOOPBACK,),
    **extra: Any,
) -> AsyncIterator[Canary]:
    """An in-process canary on ``tcp``/``udp`` ports of ``addresses``."""
    config = CanaryServiceConfig.model_validate(section(tmp, tcp, udp, addresses, **extra))
    canary = Canary(config, KEY)
    await canary.start()
    try:
        yield canary
    finally:
        await canary.close()


def request(
    port: int, proto: wire.Proto = wire.Proto.UDP, kind: wire.FrameType = wire.FrameType.PROBE
) -> bytes:
    """A keyed request as a prober sends it."""
    return wire.Request(kind, proto, port, os.urandom(wire.NONCE_SIZE)).encode(KEY)
