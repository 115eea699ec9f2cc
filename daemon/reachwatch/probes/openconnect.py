"""``openconnect``: is there a live OpenConnect/AnyConnect VPN server (ocserv, Cisco ASA) here?

Stages: ``connect``, ``tls_handshake`` (verified as in the ``tls`` probe: CA file, pins, and the issuer
named when a chain is refused), ``protocol_handshake``: ``POST`` the XML ``config-auth`` of type
``init``, as the AnyConnect client's first request, and expect ``config-auth`` of type ``auth-request``
holding a ``<form>``. That form proves a live VPN server without any credentials; its input names
(``username``, ``password``, ``group_list``...) are recorded as ``auth_form_fields``. With ``username``
and ``password_file`` (a dedicated probe account) the probe also logs in (``auth-reply`` rounds until
``complete``; a refused password is ``auth_failed``) and records ``login: ok``.

Data stage (a login and ``ping_address``): with the session cookie, a second TLS connection asks for
``CONNECT /CSCOSSLC/tunnel``; the ``200`` answer gives our address inside (``X-CSTP-Address``), and the
connection then carries CSTP frames (``formats/cstp.py``, ``vpn/cstp.py``): the data stage's ICMP echoes
to ``ping_address``, built and checked in user space (``vpn/ping.py``), ``data_stage.volume`` bytes and
``min_lifetime`` seconds (``vpn/datastage.py``). A refused tunnel is ``tunnel``/``auth_failed`` (a ``401``
or ``403``) or ``http_unexpected_status_code``. Without them the probe opens no tunnel: the session cookie
simply expires on the server (ocserv ``cookie-timeout``). DTLS is not used: the data goes over TLS, as
an AnyConnect client falls back to when UDP is blocked.

Camouflage (ocserv >= 1.2): such a server looks like an ordinary web server unless the URL carries its
secret (``https://host/?SECRET``); ``camouflage_secret_file`` holds it, so it never enters the YAML.
An ordinary web page, a 404 or a non-XML answer where the form should be is ``protocol_error`` (wrong
or missing secret, or not a VPN server), with ``http_status`` recorded.

ocserv bans addresses that accumulate failed attempts: keep the interval long (the default ten minutes).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from urllib.parse import quote
from xml.sax.saxutils import escape as xml_escape

from reachwatch.config.secrets import read_secret
from reachwatch.config.targets.openconnect import OpenConnectTarget
from reachwatch.config.types import Url
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.net.dial import connect_tcp
from reachwatch.net.errors import NetFailure
from reachwatch.net.http import HttpExchange, HttpHead
from reachwatch.net.tls import discard
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp
from reachwatch.probes.tls import handshake_with_evidence
from reachwatch.vpn.cstp import CstpTunnel
from reachwatch.vpn.datastage import run_data_stage
from reachwatch.vpn.ping import PingEcho

MAX_BODY = 64 * 1024
USER_AGENT = "AnyConnect Linux_64 4.10.07061"  # ocserv and ASA both serve this client family
_AUTH_REQUEST = re.compile(rb"<config-auth\b[^>]*\btype=\"auth-request\"")
_FORM = re.compile(rb"<form\b")
_COMPLETE = re.compile(rb"<config-auth\b[^>]*\btype=\"complete\"")
_ACTION = re.compile(rb"<form\b[^>]*\baction=\"(/[A-Za-z0-9_./-]{0,128})\"")
MAX_AUTH_ROUNDS = 4
_INPUT_NAME = re.compile(rb"<(?:input|select)\b[^>]*\bname=\"([A-Za-z0-9_.-]{1,64})\"")


def _form_action(body: bytes) -> str:
    """Where the form posts to: a same-server path only (``/auth`` for ocserv)."""
    match = _ACTION.search(body)
    return match.group(1).decode() if match else "/auth"


def _headers(cookie: str = "") -> list[tuple[str, str]]:
    """What the AnyConnect client sends with every ``config-auth`` POST (ocserv and ASA check some)."""
    headers = [
        ("User-Agent", USER_AGENT),
        ("Accept", "*/*"),
        ("Accept-Encoding", "identity"),
        ("X-Transcend-Version", "1"),
        ("X-Aggregate-Auth", "1"),
        ("X-Support-HTTP-Auth", "true"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ]
    return [*headers, ("Cookie", cookie)] if cookie else headers


def init_body(host_header: str, path: str) -> bytes:
    """The AnyConnect client's first request body: ``config-auth`` of type ``init``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<config-auth client="vpn" type="init" aggregate-auth-version="2">'
        '<version who="vpn">v9.12</version><device-id>linux-64</device-id>'
        f"<group-access>https://{host_header}{path.split('?', 1)[0]}</group-access></config-auth>"
    ).encode()


def auth_reply_body(answers: dict[str, str]) -> bytes:
    """``config-auth`` of type ``auth-reply`` carrying the form fields we can answer."""
    fields = "".join(f"<{k}>{xml_escape(v)}</{k}>" for k, v in answers.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<config-auth client="vpn" type="auth-reply" aggregate-auth-version="2">'
        '<version who="vpn">v9.12</version><device-id>linux-64</device-id>'
        f"<auth>{fields}</auth></config-auth>"
    ).encode()


async def post(exchange: HttpExchange, url: Url, body: bytes, cookie: str = "") -> tuple[HttpHead, bytes]:
    """One ``config-auth`` round on the kept-alive connection: the answer's head and bounded body."""
    await exchange.send_request("POST", url, headers=_headers(cookie), body=body, defaults=())
    head = await exchange.read_head()
    return head, await exchange.read_whole_body(head, MAX_BODY)


def _update_cookies(jar: dict[str, str], head: HttpHead) -> None:
    for line in head.header_values("set-cookie"):
        name, _, value = line.split(";", 1)[0].partition("=")
        if value.strip():
            jar[name.strip()] = value.strip()
        else:
            jar.pop(name.strip(), None)  # an empty value is the server clearing it


async def login(
    exchange: HttpExchange,
    url: Url,
    *,
    head: HttpHead,
    body: bytes,
    username: str,
    password: str,
) -> dict[str, str]:
    """Answer the auth-request forms (username, then password, as ocserv asks) until ``complete``; the
    session's cookies (``webvpn``: what opens the tunnel).

    ``url`` is where the form posts to. A form that asks for the password again means the password was
    refused (``auth_failed``); so does a non-200 answer. More than ``MAX_AUTH_ROUNDS`` forms is
    ``protocol_error``.
    """
    jar: dict[str, str] = {}
    sent_password = False
    stage = Stage.PROTOCOL_HANDSHAKE
    for _ in range(MAX_AUTH_ROUNDS):
        _update_cookies(jar, head)
        if head.status != 200:
            raise NetFailure(Failure.AUTH_FAILED, stage, f"HTTP {head.status} during login")
        if _COMPLETE.search(body):
            return jar
        fields = {m.decode() for m in _INPUT_NAME.findall(body)}
        answers: dict[str, str] = {}
        if "username" in fields:
            answers["username"] = username
        if "password" in fields:
            if sent_password:
                raise NetFailure(Failure.AUTH_FAILED, stage, "password asked for again: refused")
            answers["password"] = password
            sent_password = True
        if not answers:
            raise NetFailure(Failure.AUTH_FAILED, stage, "the login form asks for fields we cannot fill")
        cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
        head, body = await post(exchange, url, auth_reply_body(answers), cookie)
    raise NetFailure(Failure.PROTOCOL_ERROR, stage, "login did not complete")


def _secrets(target: OpenConnectTarget, ctx: ProbeContext) -> tuple[str | None, str | None]:
    """(camouflage secret, login password); blocking file I/O, run in a worker thread."""
    secret = read_secret(
        target.camouflage_secret_file, target.camouflage_secret_env, ctx.base_dir, "camouflage_secret_file"
    )
    password = read_secret(target.password_file, target.password_env, ctx.base_dir, "password_file")
    return secret, password


async def probe(target: OpenConnectTarget, ctx: ProbeContext) -> ProbeResult:
    # read on every attempt (rotation without reload), so off the event loop
    secret, password = await asyncio.to_thread(_secrets, target, ctx)
    path = target.path + (f"?{quote(secret, safe='')}" if secret else "")
    if target.username is not None and password is None:
        raise ConfigError(target.name, "username is set but neither password_file nor password_env")
    ip, reader, writer = await open_tcp(ctx, target.host, target.port)
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
        exchange = HttpExchange(
            reader,
            writer,
            stage=Stage.PROTOCOL_HANDSHAKE,
            oversized=Failure.RESPONSE_TOO_LARGE,
            keep_alive=True,  # the login rounds follow on this connection, as the AnyConnect client does
        )
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            url = Url("https", target.host, target.port, path, host_header)
            head, body = await post(exchange, url, init_body(host_header, path))
            ctx.fact("http_status", head.status)
            if head.status != 200 or not _AUTH_REQUEST.search(body) or not _FORM.search(body):
                raise NetFailure(
                    Failure.PROTOCOL_ERROR,
                    Stage.PROTOCOL_HANDSHAKE,
                    f"no config-auth auth-request form (HTTP {head.status})",
                )
            fields = sorted({m.decode() for m in _INPUT_NAME.findall(body)})
            ctx.fact("auth_form_fields", fields)
            cookies: dict[str, str] = {}
            if target.username is not None:
                action = _form_action(body) + (path[len(target.path) :] if secret else "")
                cookies = await login(
                    exchange,
                    replace(url, target=action),
                    head=head,
                    body=body,
                    username=target.username,
                    password=password or "",
                )
                ctx.fact("login", "ok")
    finally:
        discard(writer)
    if target.ping_address is not None and cookies:
        await _tunnel(target, ctx, ip, host_header, cookies)
    return ctx.succeed()


def _connect_headers(host: str, cookies: dict[str, str]) -> list[tuple[str, str]]:
    """The CONNECT of an AnyConnect client asking for a CSTP tunnel over this TLS connection (no DTLS)."""
    return [
        ("User-Agent", USER_AGENT),
        ("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items())),
        ("X-CSTP-Version", "1"),
        ("X-CSTP-Hostname", "reachwatch"),
        ("X-CSTP-Base-MTU", "1400"),
        ("X-CSTP-Address-Type", "IPv4"),
        ("X-CSTP-Accept-Encoding", "identity"),
    ]


async def _tunnel(
    target: OpenConnectTarget, ctx: ProbeContext, ip: str, host_header: str, cookies: dict[str, str]
) -> None:
    """Open the CSTP tunnel on a new TLS connection and run the data stage through it."""
    assert target.ping_address is not None
    with ctx.stage(Stage.TUNNEL):
        reader, writer = await connect_tcp(ip, target.port)
    try:
        with ctx.stage(Stage.TUNNEL):
            await handshake_with_evidence(
                ctx, reader, writer, ip=ip, port=target.port, server_name=target.sni(), opts=target,
                handshake_timeout=target.handshake_timeout,
            )  # fmt: skip
            exchange = HttpExchange(
                reader, writer, stage=Stage.TUNNEL, oversized=Failure.RESPONSE_TOO_LARGE, keep_alive=True
            )
            url = Url("https", target.host, target.port, "/CSCOSSLC/tunnel", host_header)
            headers = _connect_headers(host_header, cookies)
            await exchange.send_request("CONNECT", url, headers=headers, defaults=())
            head = await exchange.read_head()
            if head.status != 200:
                refused = head.status in (401, 403)
                failure = Failure.AUTH_FAILED if refused else Failure.HTTP_UNEXPECTED_STATUS_CODE
                raise NetFailure(failure, Stage.TUNNEL, f"CONNECT answered {head.status}")
            inside = head.header("x-cstp-address")
            if inside is None:
                raise NetFailure(Failure.PROTOCOL_ERROR, Stage.TUNNEL, "no X-CSTP-Address in the answer")
            ctx.fact("tunnel_up", True)
        tunnel = CstpTunnel(reader, writer, exchange.tunnel_data())
        try:
            echo = PingEcho(tunnel, source=inside.strip(), destination=target.ping_address)
            await run_data_stage(echo, target.data_stage, ctx)
        finally:
            tunnel.disconnect()
    finally:
        discard(writer)


SPEC = ProbeSpec(
    kind="openconnect",
    target_model=OpenConnectTarget,
    probe=probe,
    description="OpenConnect/AnyConnect: TLS, config-auth (login), then ICMP echoes through CSTP",
)
