"""Messages with file descriptors over a Unix socket pair (``SCM_RIGHTS``), on the event loop.

How sockets made inside another network namespace reach the daemon (``vpn/tunnel_netns.py``): a socket
keeps the namespace it was created in, so once its descriptor is here the daemon uses it like any other.
Messages are small JSON objects on a ``SOCK_SEQPACKET`` pair (one message per read, never split).
"""

from __future__ import annotations

import asyncio
import json
import socket

MAX_MESSAGE = 4096


async def readable(sock: socket.socket) -> None:
    """Wait until ``sock`` (non-blocking) has something to read."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


async def receive(sock: socket.socket) -> tuple[dict[str, object], list[int]]:
    """One JSON object and the descriptors it carries (at most one); ``EOFError`` when the peer left,
    ``ValueError`` for anything that is not a JSON object. The caller owns the descriptors."""
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1)
        except BlockingIOError:
            await readable(sock)
            continue
        if not data:
            raise EOFError("the peer closed the socket pair")
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            for fd in fds:
                socket.close(fd)
            raise ValueError("not a JSON object")
        return message, fds


def send(sock: socket.socket, message: dict[str, object]) -> None:
    """One JSON object (no descriptor); the message is small, so a non-blocking send does not block."""
    sock.send(json.dumps(message).encode())
