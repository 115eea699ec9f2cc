"""``openconnect``: is there a live OpenConnect/AnyConnect VPN server (ocserv, Cisco ASA) here?

Stages: ``connect``, ``tls_handshake`` (verified as in the ``tls`` probe: CA file, pins, and the issuer
named when a chain is refused), ``protocol_handshake``: ``POST`` the XML ``config-auth`` of type
``init``, as the AnyConnect client's first request, and expect ``config-auth`` of type ``auth-request``
holding a ``<form>``. That form proves a live VPN server without any credentials; its input names
(``username``, ``password``, ``group_list``...) are recorded as ``auth_form_fields``.

Camouflage (ocserv >= 1.2): such a server looks like an ordinary web server unless the URL carries its
secret (``https://host/?SECRET``); ``camouflage_secret_file`` holds it, so it never enters the YAML.
An ordinary web page, a 404 or a non-XML answer where the form should be is ``protocol_error`` (wrong
or missing secret, or not a VPN server), with ``http_status`` recorded.

ocserv bans addresses that accumulate failed attempts: keep the interval long (the default ten minutes).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

from pydantic import Field

from reachwatch.config.secrets import read_secret
from reachwatch.config.types import Duration, TargetBase
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.net.dial import connect_tcp, is_ip_literal, pin_address
from reachwatch.net.errors import NetFailure
from reachwatch.net.http_connect import http_exchange
from reachwatch.net.tls import discard
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.probes.tls import TlsOptions, handshake_with_evidence

MAX_BODY = 64 * 1024
USER_AGENT = "AnyConnect Linux_64 4.10.07061"  # ocserv and ASA both serve this client family
_AUTH_REQUEST = re.compile(rb"<config-auth\b[^>]*\btype=\"auth-request\"")
_FORM = re.compile(rb"<form\b")
_INPUT_NAME = re.compile(rb"<(?:input|select)\b[^>]*\bname=\"([A-Za-z0-9_.-]{1,64})\"")


class OpenConnectTarget(TargetBase, TlsOptions):
    """An OpenConnect/AnyConnect server (HTTPS). ``server_name`` defaults to ``host`` (none for an IP)."""

    kind: Literal["openconnect"]
    host: str = Field(min_length=1)
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = None
    path: str = Field(default="/", pattern=r"^/[A-Za-z0-9_./-]*$")  # a group URL such as /staff
    camouflage_secret_file: str | None = None
    camouflage_secret_env: str | None = None
    handshake_timeout: Duration | None = None

    def destination(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def sni(self) -> str | None:
        return self.server_name or (None if is_ip_literal(self.host) else self.host)

    def sensitive_values(self) -> list[str]:
        values = [self.host, self.server_name, *self.spki_sha256, *self.cert_sha256]
        return [v for v in values if v]


def init_request(host_header: str, path: str) -> bytes:
    """The AnyConnect client's first request: ``config-auth`` of type ``init``."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<config-auth client="vpn" type="init" aggregate-auth-version="2">'
        '<version who="vpn">v9.12</version><device-id>linux-64</device-id>'
        f"<group-access>https://{host_header}{path.split('?', 1)[0]}</group-access></config-auth>"
    ).encode()
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host_header}\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
        "Accept: */*\r\n"
        "Accept-Encoding: identity\r\n"
        "X-Transcend-Version: 1\r\n"
        "X-Aggregate-Auth: 1\r\n"
        "X-Support-HTTP-Auth: true\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode()
    return head + body


async def probe(target: OpenConnectTarget, ctx: ProbeContext) -> ProbeResult:
    secret = read_secret(
        target.camouflage_secret_file, target.camouflage_secret_env, ctx.base_dir, "camouflage_secret_file"
    )
    path = target.path + (f"?{quote(secret, safe='')}" if secret else "")
    with ctx.stage(Stage.RESOLVE):
        ip = await pin_address(target.host)
    ctx.public_fact("ip", ip)
    with ctx.stage(Stage.CONNECT):
        reader, writer = await connect_tcp(ip, target.port)
    try:
        with ctx.stage(Stage.TLS_HANDSHAKE):
            await handshake_with_evidence(
                ctx,
                reader,
                writer,
                ip=ip,
                port=target.port,
                server_name=target.sni(),
                opts=target,
                handshake_timeout=target.handshake_timeout,
            )
        host_header = target.sni() or (f"[{ip}]" if ":" in ip else ip)
        if target.port != 443:
            host_header += f":{target.port}"
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            head, body = await http_exchange(
                reader,
                writer,
                init_request(host_header, path),
                Stage.PROTOCOL_HANDSHAKE,
                body_limit=MAX_BODY,
            )
            ctx.fact("http_status", head.status)
            if head.status != 200 or not _AUTH_REQUEST.search(body) or not _FORM.search(body):
                raise NetFailure(
                    Failure.PROTOCOL_ERROR,
                    Stage.PROTOCOL_HANDSHAKE,
                    f"no config-auth auth-request form (HTTP {head.status})",
                )
            fields = sorted({m.decode() for m in _INPUT_NAME.findall(body)})
            ctx.fact("auth_form_fields", fields)
    finally:
        discard(writer)
    return ctx.succeed()


SPEC = ProbeSpec(
    kind="openconnect",
    target_model=OpenConnectTarget,
    probe=probe,
    description="OpenConnect/AnyConnect: TLS, then the config-auth init exchange (auth-request form)",
)
