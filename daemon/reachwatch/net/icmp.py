"""ICMP echo without privileges: Linux ping sockets (``SOCK_DGRAM`` + ``IPPROTO_ICMP``).

Why ping sockets. A raw socket needs ``CAP_NET_RAW``, which the daemon does not get (its unit drops every
capability). A ping socket is open to the groups in ``net.ipv4.ping_group_range``, which systemd sets to
every group (``/usr/lib/sysctl.d/50-default.conf``), so Debian and Raspberry Pi OS allow it out of the box.
The kernel fills the identifier and the checksum and hands back only replies to this socket. Where the
range excludes us, opening fails with ``EACCES``: ``permission_denied`` at stage ``connect``, and the
caller reports the echo as untested rather than as blocked.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from collections.abc import Awaitable, Callable

from reachwatch.failures import Failure, Stage
from reachwatch.net.errors import NetFailure, classified

_ECHO = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_V4 = (8, 0)  # echo request, echo reply
_V6 = (128, 129)
PAYLOAD_SIZE = 32
_RECV_BYTES = 1500
_MAX_IGNORED = 64


def _open(ip: str) -> tuple[socket.socket, tuple[int, int]]:
    v6 = ":" in ip
    family, proto = (socket.AF_INET6, socket.IPPROTO_ICMPV6) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP)
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    except OSError as exc:
        denied = exc.errno in (errno.EACCES, errno.EPERM)
        failure = Failure.PERMISSION_DENIED if denied else Failure.UNKNOWN_FAILURE
        raise NetFailure(failure, Stage.CONNECT, f"ping socket: {exc}") from exc
    sock.setblocking(False)
    return sock, _V6 if v6 else _V4


async def icmp_echo(
    ip: str, *, sends: int, interval: float, before_send: Callable[[], Awaitable[None]] | None = None
) -> float:
    """Send up to ``sends`` echo requests ``interval`` s apart; the seconds until the first matching reply.

    Every request carries a fresh random payload the reply must repeat. Silence until the caller's
    deadline (after the last send it waits on) is left to that deadline (``generic_timeout_error``); an
    ICMP error (host unreachable...) is classified at stage ``connect``. ``before_send`` (a pacer) is
    awaited before every request.
    """
    sock, (request_type, reply_type) = _open(ip)
    loop = asyncio.get_running_loop()
    payload = os.urandom(PAYLOAD_SIZE)
    start = loop.time()
    try:
        with classified(Stage.CONNECT):
            sock.connect((ip, 0))
            for sequence in range(1, sends + 1):
                if before_send is not None:
                    await before_send()
                await loop.sock_sendall(sock, _ECHO.pack(request_type, 0, 0, 0, sequence) + payload)
                last = sequence == sends
                try:
                    async with asyncio.timeout(None if last else interval):
                        await _reply(loop, sock, reply_type, payload)
                        return loop.time() - start
                except TimeoutError:
                    if last:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
    finally:
        sock.close()


async def _reply(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, reply_type: int, payload: bytes
) -> None:
    """Wait for an echo reply carrying ``payload`` (any of our sequence numbers); drop anything else."""
    for _ in range(_MAX_IGNORED):
        data = await loop.sock_recv(sock, _RECV_BYTES)
        if len(data) >= _ECHO.size and data[0] == reply_type and data[_ECHO.size :] == payload:
            return
    raise NetFailure(Failure.PROTOCOL_ERROR, Stage.CONNECT, "too many unexpected ICMP messages")
