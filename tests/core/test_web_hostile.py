"""The listener against hostile peers: idle, trickling and silent-TLS connections are closed, a flood is
capped, oversized headers get 431 without their bytes in the log, password guessing is throttled, and a
loopback listener refuses DNS-rebinding Hosts and cross-site reloads."""

from __future__ import annotations

import asyncio
import base64
import signal
import socket
import sqlite3
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import structlog
import trustme

from reachwatch import webauth
from reachwatch.config.webconfig import WebSecurity, load_web_security
from reachwatch.web import WebServer, host_is_not_a_name
from reachwatch.webauth import BasicAuth, client_key
from reachwatch.weblisten import ListenerLimits, connection_cap, probe_descriptor_reserve

from .test_daemon import _address, _get, _journal_rows, _metric, _run_argv, _wait, _write_config
from .test_web import Backend

FAST = ListenerLimits(request_timeout=0.5, tls_handshake_timeout=0.5, max_lifetime=3.0, max_connections=8)


async def _server(security: WebSecurity | None = None, limits: ListenerLimits = FAST) -> WebServer:
    server = WebServer(Backend(), "127.0.0.1:0", security or WebSecurity(), limits=limits)
    await server.start()
    return server


@pytest.fixture
async def fast() -> AsyncIterator[WebServer]:
    server = await _server()
    yield server
    await server.stop()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sends until it closes; fails if it keeps the connection past ``seconds``."""
    async with asyncio.timeout(seconds):
        return await reader.read()


async def test_an_idle_connection_is_closed(fast: WebServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    assert await _closed_within(reader, 3) == b""
    writer.close()
    await asyncio.sleep(0.05)
    assert fast.counters().connections == 0


async def test_trickled_headers_are_cut_off(fast: WebServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    async def trickle() -> None:
        for i in range(100):
            writer.write(f"X-{i}: a\r\n".encode())
            await asyncio.sleep(0.1)

    task = asyncio.create_task(trickle())
    try:
        assert await _closed_within(reader, 3) == b""
    finally:
        task.cancel()
        writer.close()


async def test_a_keep_alive_connection_serves_then_closes_when_idle(fast: WebServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    async with asyncio.timeout(3):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    await _closed_within(reader, 3)
    writer.close()


@pytest.fixture
def tls_security(tmp_path: Path) -> tuple[trustme.CA, WebSecurity]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "k.pem"))
    (tmp_path / "k.pem").chmod(0o600)
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
    (tmp_path / "web.yml").write_text("tls_server_config: {cert_file: c.pem, key_file: k.pem}\n")
    return ca, load_web_security(tmp_path / "web.yml")


async def test_tls_connections_that_stall_before_or_after_the_handshake_are_closed(
    tls_security: tuple[trustme.CA, WebSecurity],
) -> None:
    ca, security = tls_security
    server = await _server(security)
    try:
        # TCP only, no ClientHello
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await _closed_within(reader, 3) == b""
        writer.close()
        # a finished handshake, then silence
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx)
        assert await _closed_within(reader, 3) == b""
        writer.close()
        await asyncio.sleep(0.1)
        assert server.counters().connections == 0
    finally:
        await server.stop()


async def test_a_flood_is_capped_and_the_listener_serves_again_once_it_passes(fast: WebServer) -> None:
    held = [await asyncio.open_connection("127.0.0.1", fast.port) for _ in range(8)]
    await asyncio.sleep(0.05)
    assert fast.counters().connections == 8
    extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", fast.port)
    assert await _closed_within(extra_reader, 1) == b""  # over the cap: closed at once
    extra_writer.close()
    assert fast.counters().refused >= 1
    for _, w in held:
        w.close()
    await asyncio.sleep(0.1)
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{fast.port}/-/healthy") as r:
        assert r.status == 200


def test_the_connection_cap_leaves_the_probes_their_descriptors() -> None:
    limits = ListenerLimits(max_connections=128)
    reserve = probe_descriptor_reserve(16)
    assert connection_cap(limits, 8192, reserve) == 128
    assert connection_cap(limits, 256, reserve) == 256 - reserve
    assert connection_cap(limits, 100, reserve) == 4  # tight budget: a scrape still gets in


async def test_an_oversized_header_gets_431_and_one_log_line_without_its_bytes(fast: WebServer) -> None:
    marker = "ATTACKER" * 12_500  # 100 KB
    with structlog.testing.capture_logs() as logs:
        reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
        writer.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {marker}\r\n\r\n".encode())
        answer = await _closed_within(reader, 3)
        writer.close()
    assert answer.split(b" ", 2)[1] == b"431"
    assert len(logs) == 1 and logs[0]["event"] == "web_request_rejected" and logs[0]["status"] == 431
    assert "ATTACKER" not in repr(logs)


async def test_a_malformed_request_is_400_with_one_line(fast: WebServer) -> None:
    with structlog.testing.capture_logs() as logs:
        reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header SECRETBYTES\r\n\r\n")
        answer = await _closed_within(reader, 3)
        writer.close()
    assert answer.split(b" ", 2)[1] == b"400"
    assert len(logs) == 1 and "SECRETBYTES" not in repr(logs)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:10491", True),
        ("localhost:10491", True),
        ("[::1]:10491", True),
        ("127.0.0.1", True),
        ("evil.example:10491", False),
        ("127.0.0.1.evil.example", False),
        ("localhost.evil.example:10491", False),
    ],
)
def test_host_names_a_rebinding_page_could_send_are_told_apart(host: str, allowed: bool) -> None:
    assert host_is_not_a_name(host) is allowed


async def test_loopback_listener_refuses_rebinding_hosts_and_cross_site_reloads(fast: WebServer) -> None:
    base = f"http://127.0.0.1:{fast.port}"
    backend = fast.backend
    assert isinstance(backend, Backend)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/api/v1/status", headers={"Host": f"evil.example:{fast.port}"}) as r:
            assert r.status == 421
        async with s.get(f"{base}/api/v1/status", headers={"Host": f"localhost:{fast.port}"}) as r:
            assert r.status == 200
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": f"http://127.0.0.1:{fast.port + 1}"},
        ):
            async with s.post(f"{base}/-/reload", headers=headers) as r:
                assert r.status == 403, headers
        assert backend.reloads == 0
        async with s.post(f"{base}/-/reload", headers={"Origin": f"http://127.0.0.1:{fast.port}"}) as r:
            assert r.status == 200  # the same origin (a page served by us) may
        async with s.post(f"{base}/-/reload") as r:
            assert r.status == 200  # curl, Prometheus tooling: no Origin
    assert backend.reloads == 2


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_password_guessing_costs_a_bounded_number_of_bcrypt_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0
    real = webauth._checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        nonlocal calls
        calls += 1
        return real(password, hashed)

    monkeypatch.setattr(webauth, "_checkpw", counting)
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(4))
    server = await _server(
        WebSecurity(users={"prometheus": hashed}), ListenerLimits(max_connections=256)
    )
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url, headers=_basic("prometheus", "right")) as r:
                assert r.status == 200  # the scraper, verified once and cached
            calls = 0

            async def guess(i: int) -> int:
                async with s.get(url, headers=_basic("prometheus", f"guess{i}")) as r:
                    return r.status

            statuses = await asyncio.gather(*(guess(i) for i in range(100)))
            assert calls <= webauth.FAILURE_BURST
            assert statuses.count(401) == calls and statuses.count(429) == 100 - calls
            # the scraper, from the same address, still gets in without waiting for bcrypt
            async with s.get(url, headers=_basic("prometheus", "right")) as r:
                assert r.status == 200
            assert calls <= webauth.FAILURE_BURST
        assert server.counters().auth_throttled == 100 - calls
    finally:
        await server.stop()


async def test_failure_budget_refills_and_is_per_client() -> None:
    auth = BasicAuth(burst=2, failures_per_minute=600.0)  # one token per 0.1 s
    auth.set_users({"u": bcrypt.hashpw(b"p", bcrypt.gensalt(4))})
    wrong = "Basic " + base64.b64encode(b"u:x").decode()
    results = [await auth.check(wrong, "192.0.2.1") for _ in range(3)]
    assert [r.value for r in results] == ["denied", "denied", "throttled"]
    assert (await auth.check(wrong, "192.0.2.2")).value == "denied"  # another client has its own budget
    time.sleep(0.15)
    assert (await auth.check(wrong, "192.0.2.1")).value == "denied"
    assert client_key("2001:db8::1") == client_key("2001:db8::2") == "2001:db8::/64"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"


@pytest.mark.slow
def test_a_socket_flood_does_not_blind_the_probes(tmp_path: Path) -> None:
    """The finding: ~1,100 idle sockets to the listener exhausted the descriptors and every probe failed
    (``unknown_failure``). The daemon here runs with 256 descriptors and gets 1,000 connections."""
    site = socket.create_server(("127.0.0.1", 0), backlog=256)
    port = site.getsockname()[1]
    cfg, state, log = tmp_path / "c.yaml", tmp_path / "st", tmp_path / "d.log"
    _write_config(cfg, port, f"  - {{name: site, kind: tcp, host: 127.0.0.1, port: {port}}}\n")

    flood: list[socket.socket] = []
    argv = ["prlimit", "--nofile=256:256", "--", *_run_argv(cfg, state)]
    with log.open("wb") as out, subprocess.Popen(argv, stdout=out, stderr=out) as proc:
        try:
            base = _wait(lambda: _address(log), 30, "listening")
            listen_port = int(base.rsplit(":", 1)[1])
            _wait(lambda: _journal_rows(state, "site") >= 1, 20, "first result")
            for _ in range(1000):
                flood.append(socket.create_connection(("127.0.0.1", listen_port)))
            before = _journal_rows(state, "site")
            _wait(lambda: _journal_rows(state, "site") >= before + 3, 20, "probing during the flood")
            for s in flood:
                s.close()
            flood.clear()
            metrics = _wait(lambda: _get(f"{base}/metrics")[1], 30, "metrics after the flood")
            assert _metric(metrics, "reachwatch_web_connection_limit") == 256 - probe_descriptor_reserve(16)
            refused = _metric(metrics, "reachwatch_web_connections_refused_total")
            assert refused is not None and refused >= 1000 - 128
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            for s in flood:
                s.close()
            if proc.poll() is None:
                proc.kill()
            site.close()
    conn = sqlite3.connect(state / "journal.sqlite3")
    failures = conn.execute("SELECT failure FROM results WHERE success = 0").fetchall()
    conn.close()
    assert failures == []  # not one attempt lost to the flood


async def test_a_flood_hovering_at_the_cap_logs_one_line_not_one_per_freed_slot() -> None:
    fast = await _server(limits=ListenerLimits(max_connections=8, request_timeout=30.0))
    with structlog.testing.capture_logs() as logs:
        held = [await asyncio.open_connection("127.0.0.1", fast.port) for _ in range(8)]
        for _ in range(5):  # refused; then a slot frees, is taken again, and more are refused
            r, w = await asyncio.open_connection("127.0.0.1", fast.port)
            assert await _closed_within(r, 1) == b""
            w.close()
            _, first = held.pop(0)
            first.close()
            await asyncio.sleep(0.05)
            held.append(await asyncio.open_connection("127.0.0.1", fast.port))
            await asyncio.sleep(0.05)
        for _, w in held:
            w.close()
    await fast.stop()
    events = [e["event"] for e in logs if e["event"].startswith("web_connection_limit")]
    assert events == ["web_connection_limit_reached"]
