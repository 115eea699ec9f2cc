"""SOCKS5 client handshake (RFC 1928) with optional username/password auth (RFC 1929).

Two steps, two stages:

- ``socks5_handshake`` (``protocol_handshake``): method negotiation and, when the server asks for it,
  the username/password sub-negotiation. A ``05 FF`` (no acceptable method) or an auth status other than
  ``00`` is ``proxy_auth_failed``: the proxy is alive but will not serve us.
- ``socks5_connect`` (``tunnel``): the CONNECT request through the proxy to the canary. The reply code
  says *where* it failed, which is the point of this probe: ``01``/``02`` (general failure, not allowed by
  ruleset) are the proxy refusing, ``03``-``06`` (network/host unreachable, refused, TTL expired) are the
  proxy's OWN upstream failing — that happens outside the censor's reach, so it is never blocking.

Every read has a fixed size (the protocol's messages are at most 262 bytes); time is bounded by the
probe's deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct

from reachwatch.failures import Failure, Stage
from reachwatch.net.errors import NetFailure, classified

VERSION = 5
METHOD_NO_AUTH = 0x00
METHOD_USERPASS = 0x02
METHOD_NONE_ACCEPTABLE = 0xFF
CMD_CONNECT = 0x01
ATYP_IPV4 = 0x01
ATYP_DOMAIN = 0x03
ATYP_IPV6 = 0x04

# RFC 1928 section 6 reply codes -> where the failure is. 07/08 (command/address type not supported)
# mean the proxy does not speak what we asked: a protocol mismatch, not censorship.
REPLY_FAILURES: dict[int, Failure] = {
    0x01: Failure.PROXY_CONNECT_REFUSED,  # general SOCKS server failure
    0x02: Failure.PROXY_CONNECT_REFUSED,  # connection not allowed by ruleset
    0x03: Failure.PROXY_UPSTREAM_FAILED,  # network unreachable (from the proxy)
    0x04: Failure.PROXY_UPSTREAM_FAILED,  # host unreachable (from the proxy)
    0x05: Failure.PROXY_UPSTREAM_FAILED,  # connection refused (by the canary, to the proxy)
    0x06: Failure.PROXY_UPSTREAM_FAILED,  # TTL expired
    0x07: Failure.PROTOCOL_ERROR,  # command not supported
    0x08: Failure.PROTOCOL_ERROR,  # address type not supported
}


def encode_address(host: str, port: int) -> bytes:
    """``ATYP addr port`` as used by SOCKS5 requests (and Shadowsocks target headers)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        name = host.encode("idna")
        if not 0 < len(name) <= 255:
            raise ValueError(f"host name of {len(name)} bytes cannot be sent through SOCKS5") from None
        return bytes([ATYP_DOMAIN, len(name)]) + name + struct.pack("!H", port)
    atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
    return bytes([atyp]) + ip.packed + struct.pack("!H", port)


async def _read(reader: asyncio.StreamReader, n: int, stage: Stage) -> bytes:
    with classified(stage):
        return await reader.readexactly(n)


async def _write(writer: asyncio.StreamWriter, data: bytes, stage: Stage) -> None:
    with classified(stage):
        writer.write(data)
        await writer.drain()


async def socks5_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    username: str | None = None,
    password: str | None = None,
) -> int:
    """Negotiate a method (and authenticate); returns the method the server chose."""
    stage = Stage.PROTOCOL_HANDSHAKE
    methods = [METHOD_NO_AUTH] if username is None else [METHOD_NO_AUTH, METHOD_USERPASS]
    await _write(writer, bytes([VERSION, len(methods), *methods]), stage)
    version, method = await _read(reader, 2, stage)
    if version != VERSION:
        raise NetFailure(Failure.PROTOCOL_ERROR, stage, f"not a SOCKS5 server (version byte {version})")
    if method == METHOD_NONE_ACCEPTABLE:
        # alive, but wants credentials we did not offer (or a method we do not speak)
        raise NetFailure(Failure.PROXY_AUTH_FAILED, stage, "no acceptable authentication method")
    if method not in methods:
        raise NetFailure(Failure.PROTOCOL_ERROR, stage, f"server chose a method we did not offer ({method})")
    if method == METHOD_USERPASS:
        user = (username or "").encode()
        pw = (password or "").encode()
        if len(user) > 255 or len(pw) > 255:
            raise ValueError("SOCKS5 username and password are limited to 255 bytes each")
        await _write(writer, bytes([1, len(user)]) + user + bytes([len(pw)]) + pw, stage)
        _sub_version, status = await _read(reader, 2, stage)
        if status != 0:
            raise NetFailure(Failure.PROXY_AUTH_FAILED, stage, f"username/password rejected ({status})")
    return method


async def socks5_connect(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
) -> None:
    """Ask the proxy to connect to ``host:port``; returns when the tunnel is open.

    A host name is sent as a name (ATYP 3): the proxy resolves it, as a user's browser would let it, so
    local DNS tampering does not leak into this measurement.
    """
    stage = Stage.TUNNEL
    await _write(writer, bytes([VERSION, CMD_CONNECT, 0]) + encode_address(host, port), stage)
    version, rep, _rsv, atyp = await _read(reader, 4, stage)
    if version != VERSION:
        raise NetFailure(Failure.PROTOCOL_ERROR, stage, f"bad reply version {version}")
    if rep != 0:
        failure = REPLY_FAILURES.get(rep, Failure.PROTOCOL_ERROR)
        raise NetFailure(failure, stage, f"SOCKS5 reply code {rep}")
    # drain the bound address so the next byte the caller reads is tunnel data
    if atyp == ATYP_IPV4:
        await _read(reader, 4 + 2, stage)
    elif atyp == ATYP_IPV6:
        await _read(reader, 16 + 2, stage)
    elif atyp == ATYP_DOMAIN:
        (length,) = await _read(reader, 1, stage)
        await _read(reader, length + 2, stage)
    else:
        raise NetFailure(Failure.PROTOCOL_ERROR, stage, f"bad address type {atyp} in reply")
