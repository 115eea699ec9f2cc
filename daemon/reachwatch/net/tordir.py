"""A bounded HTTP GET against a Tor DirPort (dir-spec section 6): status code and body.

DirPorts answer in HTTP/1.0 and close the connection after the body, so one request per connection is
all we need (sent as HTTP/1.1 with ``Connection: close``: h11 only speaks 1.1, and tor accepts it). The
response is parsed with ``h11`` and capped at ``max_bytes``: a censor's block page or an endless stream
costs at most that much memory. Failures are classified under the ``http`` stage.
"""

from __future__ import annotations

import asyncio

import h11

from reachwatch.failures import Failure, Stage
from reachwatch.net.errors import NetFailure, classified
from reachwatch.net.http import h11_reason

_READ_CHUNK = 16 * 1024


async def dir_get(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    path: str,
    *,
    max_bytes: int,
) -> tuple[int, bytes]:
    """Send ``GET path``; return ``(status, body)``. Bodies over ``max_bytes``: ``response_too_large``."""
    conn = h11.Connection(our_role=h11.CLIENT)
    request = h11.Request(method="GET", target=path, headers=[("Host", host), ("Connection", "close")])
    status = 0
    body = bytearray()
    with classified(Stage.HTTP):
        writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
        await writer.drain()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise NetFailure(Failure.HTTP_INVALID_RESPONSE, Stage.HTTP, h11_reason(exc)) from exc
            if event is h11.NEED_DATA:
                data = await reader.read(_READ_CHUNK)
                conn.receive_data(data)  # b"" marks EOF, which ends an HTTP/1.0 body
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > max_bytes:
                    raise NetFailure(Failure.RESPONSE_TOO_LARGE, Stage.HTTP, f"more than {max_bytes} bytes")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    if status == 0:
        raise NetFailure(Failure.HTTP_INVALID_RESPONSE, Stage.HTTP, "connection closed before a response")
    return status, bytes(body)
