"""Name resolution and single-attempt TCP connects to a pinned address.

One attempt, one address family, one IP: a probe that silently fell back to another address (happy
eyeballs, retries) would hide exactly the blocking we want to see. Retries belong to the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from reachwatch.config.types import is_ip_literal
from reachwatch.failures import Failure, Stage
from reachwatch.net.errors import NetFailure, classified

# asyncio's default StreamReader limit is 64 KiB; probes read with explicit bounds on top of this.
STREAM_LIMIT = 64 * 1024


async def resolve(host: str, *, family: int = socket.AF_UNSPEC) -> list[str]:
    """Resolve ``host`` with the system resolver; an IP literal is returned as is.

    Returns the addresses in resolver order (deduplicated). Failures are classified under ``resolve``.
    """
    if is_ip_literal(host):
        return [host.strip("[]")]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        failure = {
            socket.EAI_NONAME: Failure.DNS_NXDOMAIN_ERROR,
            socket.EAI_AGAIN: Failure.DNS_TEMPORARY_FAILURE,
            socket.EAI_FAIL: Failure.DNS_SERVFAIL_ERROR,
        }.get(exc.errno or 0, Failure.DNS_SERVER_MISBEHAVING)
        if getattr(socket, "EAI_NODATA", None) == exc.errno:
            failure = Failure.DNS_NO_ANSWER
        raise NetFailure(failure, Stage.RESOLVE, str(exc)) from exc
    addrs: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in addrs:
            addrs.append(addr)
    if not addrs:
        raise NetFailure(Failure.DNS_NO_ANSWER, Stage.RESOLVE)
    return addrs


async def pin_address(host: str, *, family: int = socket.AF_UNSPEC) -> str:
    """The one address a probe will use for ``host``: the first the resolver returned."""
    return (await resolve(host, family=family))[0]


async def connect_tcp(ip: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open one TCP connection to ``ip:port``. The caller's deadline bounds the time spent here.

    A SYN that is never answered shows up as ``generic_timeout_error`` when the probe's deadline expires
    (classified by the runner with the stage still ``connect``).
    """
    with classified(Stage.CONNECT):
        return await asyncio.open_connection(ip, port, limit=STREAM_LIMIT)


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close a stream without letting a peer's misbehaviour at close time turn into a failure."""
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), timeout=1.0)
