"""HTTP CONNECT through a proxy (RFC 9110 section 9.3.6), on the one HTTP/1.1 exchange of ``net/http.py``.

``http_connect`` sends ``CONNECT host:port`` (with ``Proxy-Authorization: Basic`` when credentials are
given) and maps the answer to where it failed:

- no parseable status line: ``protocol_handshake``/``http_invalid_response`` (not an HTTP proxy); a head
  over 16 KiB / 100 lines: ``protocol_handshake``/``response_too_large``;
- ``407`` (``401`` from tinyproxy): ``protocol_handshake``/``proxy_auth_failed`` (alive, wants other
  credentials);
- ``403``/``405``: ``tunnel``/``proxy_connect_refused`` (the proxy's policy, e.g. a port not allowed);
- ``500`` (tinyproxy), ``502``/``503``/``504``: ``tunnel``/``proxy_upstream_failed`` (the proxy's own
  upstream; not blocking);
- other non-2xx: ``tunnel``/``http_unexpected_status_code``.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

from reachwatch.config.types import Url, host_port
from reachwatch.failures import Failure, Stage
from reachwatch.net.errors import NetFailure
from reachwatch.net.http import HttpExchange, HttpHead

_CONNECT_FAILURES: dict[int, Failure] = {
    403: Failure.PROXY_CONNECT_REFUSED,
    405: Failure.PROXY_CONNECT_REFUSED,
    # tinyproxy answers "500 Unable to connect" when its own connect upstream fails (squid uses 503)
    500: Failure.PROXY_UPSTREAM_FAILED,
    502: Failure.PROXY_UPSTREAM_FAILED,
    503: Failure.PROXY_UPSTREAM_FAILED,
    504: Failure.PROXY_UPSTREAM_FAILED,
}


@dataclass(frozen=True)
class Tunnel:
    """A CONNECT the proxy accepted: its answer, and tunnel bytes that arrived in the same read (a
    destination that speaks first, e.g. an SSH banner); the stream must deliver those before any other."""

    head: HttpHead
    early_data: bytes


def basic_auth(username: str, password: str) -> str:
    """The ``Basic`` credentials value of an (Proxy-)Authorization header (RFC 7617)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


async def http_connect(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    port: int,
    *,
    username: str | None = None,
    password: str | None = None,
) -> Tunnel:
    """Open a tunnel to ``host:port`` through the HTTP proxy on this connection."""
    authority = host_port(host, port)
    headers = [("User-Agent", "reachwatch")]
    if username is not None:
        headers.append(("Proxy-Authorization", basic_auth(username, password or "")))
    exchange = HttpExchange(
        reader, writer, stage=Stage.PROTOCOL_HANDSHAKE, oversized=Failure.RESPONSE_TOO_LARGE, keep_alive=True
    )
    url = Url(scheme="http", host=host, port=port, target=authority, host_header=authority)
    await exchange.send_request("CONNECT", url, headers=headers, defaults=())
    head = await exchange.read_head()
    if 200 <= head.status < 300:
        return Tunnel(head, exchange.tunnel_data())
    # 407 is the standard answer; tinyproxy 1.11 answers a CONNECT with bad credentials with 401
    if head.status in (401, 407):
        raise NetFailure(Failure.PROXY_AUTH_FAILED, Stage.PROTOCOL_HANDSHAKE, f"{head.status} from proxy")
    failure = _CONNECT_FAILURES.get(head.status, Failure.HTTP_UNEXPECTED_STATUS_CODE)
    raise NetFailure(failure, Stage.TUNNEL, f"CONNECT answered {head.status}")
