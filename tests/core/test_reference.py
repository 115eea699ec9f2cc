"""The reference-vantage client reads another reachwatch's /api/v1/status, bounded, and never guesses.

The reference is served by a real aiohttp app on 127.0.0.1 with the documented JSON shape (the API is a
public seam between two reachwatch instances).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from structlog.testing import capture_logs

from reachwatch import reference
from reachwatch.config.schema import ReferenceVantage
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage
from reachwatch.model import Observation
from reachwatch.reference import ReferenceClient, ReferenceSet, parse_status
from tests.servers import free_port, server_context


def status(now: float, **targets: tuple[float, bool] | None) -> dict[str, Any]:
    """A status document; each target is (age in seconds, success) or None (never probed)."""
    items = []
    for name, seen in targets.items():
        last = None
        if seen is not None:
            age, success = seen
            last = {
                "target": name,
                "kind": "tcp",
                "started_at": now - age,
                "duration_s": 0.1,
                "success": success,
                "failure": None if success else "generic_timeout_error",
                "stage": None if success else "connect",
                "evidence": None,
                "stage_durations": {},
                "facts": {},
            }
        items.append({"name": name, "kind": "tcp", "role": "target", "verdict": "reachable", "last": last})
    return {
        "version": "0.1.0",
        "vantage": {"name": "abroad", "state": "online", "since": now},
        "targets": items,
    }


@asynccontextmanager
async def http_app(app: web.Application, *, ssl_ctx: Any = None) -> AsyncIterator[int]:
    """A real aiohttp server on 127.0.0.1:0 (HTTPS with ``ssl_ctx``); yields its port."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.SockSite(runner, _listening_socket(), ssl_context=ssl_ctx)
    await site.start()
    try:
        yield site._sock.getsockname()[1]
    finally:
        await runner.cleanup()


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def reference_server(
    handler: Callable[[web.Request], Any], *, ssl_ctx: Any = None
) -> AsyncIterator[tuple[int, list[web.Request]]]:
    requests: list[web.Request] = []

    async def counted(request: web.Request) -> web.StreamResponse:
        requests.append(request)
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application()
    app.router.add_get("/api/v1/status", counted)
    async with http_app(app, ssl_ctx=ssl_ctx) as port:
        yield port, requests


def ref(port: int, scheme: str = "http", **kw: Any) -> ReferenceVantage:
    return ReferenceVantage(name="abroad", url=f"{scheme}://127.0.0.1:{port}", **kw)


async def test_success_for_reports_the_references_latest_attempt_within_max_age(tmp_path: Path) -> None:
    now = time.time()
    doc = status(now, up=(10, True), down=(10, False), stale=(4000, True), never=None)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(doc)

    async with reference_server(handler) as (port, _):
        client = ReferenceClient(ref(port, max_age="30m"), tmp_path)
        try:
            assert await client.refresh()
        finally:
            await client.close()
    assert client.success_for("up", now) is True
    assert client.success_for("down", now) is False
    assert client.success_for("stale", now) is None  # older than max_age: does not count
    assert client.success_for("never", now) is None
    assert client.success_for("not-there", now) is None
    # the same observation ages out as time passes
    assert client.success_for("up", now + 1800) is None


async def test_basic_auth_password_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = "Basic " + base64.b64encode(b"probe:s3cret").decode()

    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401)
        return web.json_response(status(time.time(), up=(1, True)))

    secret = tmp_path / "ref.pass"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    monkeypatch.setenv("RW_TEST_REF_PASS", "s3cret")
    async with reference_server(handler) as (port, _):
        for options in ({"password_file": "ref.pass"}, {"password_env": "RW_TEST_REF_PASS"}):
            client = ReferenceClient(ref(port, username="probe", **options), tmp_path)
            try:
                assert await client.refresh(), options
                assert client.success_for("up", time.time()) is True
            finally:
                await client.close()
        # a wrong password is a failed fetch: no reference, not a verdict
        monkeypatch.setenv("RW_TEST_REF_PASS", "wrong")
        client = ReferenceClient(ref(port, username="probe", password_env="RW_TEST_REF_PASS"), tmp_path)
        try:
            assert not await client.refresh()
            assert client.success_for("up", time.time()) is None
        finally:
            await client.close()


def test_unreadable_secret_or_ca_is_a_config_error(tmp_path: Path) -> None:
    loose = tmp_path / "loose.pass"
    loose.write_text("x")
    loose.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others"):
        ReferenceClient(ref(1, username="u", password_file=str(loose)), tmp_path)
    with pytest.raises(ConfigError, match=r"reference_vantages\[abroad\]\.ca_file: cannot load CA file"):
        ReferenceClient(ref(1, scheme="https", ca_file="missing.pem"), tmp_path)


async def test_https_reference_with_private_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(status(time.time(), up=(1, True)))

    async with reference_server(handler, ssl_ctx=server_context(ca, "127.0.0.1")) as (port, _):
        trusted = ReferenceClient(ref(port, scheme="https", ca_file="ca.pem"), tmp_path)
        untrusted = ReferenceClient(ref(port, scheme="https"), tmp_path)
        try:
            assert await trusted.refresh()
            assert not await untrusted.refresh()  # system roots do not know our CA
        finally:
            await trusted.close()
            await untrusted.close()


async def test_hostile_reference_bodies_mean_no_reference(tmp_path: Path) -> None:
    now = time.time()
    mode = {"what": "ok"}

    async def handler(request: web.Request) -> web.StreamResponse:
        what = mode["what"]
        if what == "huge":
            # no Content-Length: the client must stop reading at its own bound
            resp = web.StreamResponse()
            await resp.prepare(request)
            for _ in range(100):
                await resp.write(b" " * 65536)
            return resp
        if what == "garbage":
            return web.Response(body=b"\x00\xff not json", content_type="application/json")
        if what == "wrong-shape":
            return web.json_response({"targets": "nope"})
        if what == "status-500":
            return web.Response(status=500)
        return web.json_response(status(now, up=(1, True)))

    async with reference_server(handler) as (port, _):
        client = ReferenceClient(ref(port), tmp_path, max_bytes=1024 * 1024)
        try:
            assert await client.refresh()  # a good answer first, so failures visibly clear it
            for what in ("huge", "garbage", "wrong-shape", "status-500"):
                mode["what"] = "ok"
                assert await client.refresh()
                mode["what"] = what
                assert not await client.refresh(), what
                assert client.success_for("up", now) is None, what
        finally:
            await client.close()


async def test_unreachable_and_tarpit_references_are_bounded_in_time(tmp_path: Path) -> None:
    refused = ReferenceClient(ref(free_port()), tmp_path)
    try:
        assert not await refused.refresh()
    finally:
        await refused.close()

    async def tarpit(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response({})

    async with reference_server(tarpit) as (port, _):
        client = ReferenceClient(ref(port, timeout="500ms"), tmp_path)
        t0 = time.monotonic()
        try:
            assert not await client.refresh()
        finally:
            await client.close()
        assert time.monotonic() - t0 < 5


async def test_concurrent_observers_share_one_fetch_until_it_is_stale(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.json_response(status(time.time(), up=(1, True), down=(1, False)))

    async with reference_server(handler) as (port, requests):
        refs = ReferenceSet([ref(port)], tmp_path, refresh_interval=60)
        try:
            answers = await asyncio.gather(*(refs.observe("up") for _ in range(20)))
            assert [a is not None and a.success for a in answers] == [True] * 20
            assert len(requests) == 1
            assert refs.success_for("down", time.time()) is False
            assert len(requests) == 1
            # a minute later the cache is stale: fetched again
            later = await refs.observe("up", now=time.time() + 61)
            assert later is not None and later.success is True
            assert len(requests) == 2
        finally:
            await refs.close()


async def test_the_configured_refresh_paces_the_fetches(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(status(time.time(), up=(1, True)))

    async with reference_server(handler) as (port, requests):
        refs = ReferenceSet([ref(port, refresh="5m")], tmp_path)
        try:
            now = time.time()
            await refs.observe("up", now=now)
            await refs.observe("up", now=now + 299)
            assert len(requests) == 1
            await refs.observe("up", now=now + 300)
            assert len(requests) == 2
        finally:
            await refs.close()
    with pytest.raises(ValueError, match="refresh"):
        ref(1, refresh="100ms")  # at least a second: a reference is somebody's scarce server


async def test_reference_set_follows_the_majority_and_no_references_means_none(tmp_path: Path) -> None:
    now = time.time()
    docs = [status(now, t=(1, False)), status(now, t=(1, True)), status(now, t=(2, True))]

    def serve(doc: dict[str, Any]) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(doc)

        return handler

    async with (
        reference_server(serve(docs[0])) as (p1, _),
        reference_server(serve(docs[1])) as (p2, _),
        reference_server(serve(docs[2])) as (p3, _),
    ):
        configs = [
            ReferenceVantage(name="a", url=f"http://127.0.0.1:{p1}"),
            ReferenceVantage(name="b", url=f"http://127.0.0.1:{p2}/"),
            ReferenceVantage(name="c", url=f"http://127.0.0.1:{p3}/"),
        ]
        for chosen, expected in (
            (configs, True),  # two reached it, one did not
            (configs[:2], None),  # one against one: no answer
            (configs[:1], False),
        ):
            refs = ReferenceSet(chosen, tmp_path)
            try:
                seen = await refs.observe("t", now)
                assert (seen.success if seen else None) is expected, [c.name for c in chosen]
                assert refs.success_for("other", now) is None
            finally:
                await refs.close()
        refs = ReferenceSet(configs, tmp_path)
        try:
            seen = await refs.observe("t", now)
            # the freshest observation of the majority speaks for it (b's is 1 s old, c's 2 s)
            assert seen is not None and seen.reference == "b"
        finally:
            await refs.close()
    assert await ReferenceSet([], tmp_path).observe("t") is None


def test_parse_status_skips_malformed_entries() -> None:
    doc = {
        "targets": [
            {"name": "a", "last": {"started_at": 5.0, "success": True}},
            {"name": "b", "last": {"started_at": "yesterday", "success": True}},
            {"name": "c", "last": {"started_at": True, "success": True}},
            {"name": 7, "last": {"started_at": 5.0, "success": True}},
            "junk",
        ]
    }
    parsed = parse_status(json.loads(json.dumps(doc)), "abroad")
    assert list(parsed) == ["a"]
    assert (parsed["a"].reference, parsed["a"].observed_at, parsed["a"].success) == ("abroad", 5.0, True)
    with pytest.raises(ValueError):
        parse_status([])


@pytest.mark.parametrize("started_at", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_attempt_time_is_no_answer(started_at: str) -> None:
    """``NaN`` passed the max_age check (every comparison with NaN is false) and counted as fresh."""
    body = '{"targets": [{"name": "a", "last": {"started_at": ' + started_at + ', "success": true}}]}'
    assert parse_status(json.loads(body)) == {}


async def test_the_status_is_parsed_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real = reference.parse_status

    def recording(data: Any, name: str) -> dict[str, Observation]:
        threads.append(threading.current_thread())
        return real(data, name)

    monkeypatch.setattr(reference, "parse_status", recording)
    now = time.time()

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(status(now, t=(1, True)))

    async with reference_server(handler) as (port, _):
        client = ReferenceClient(ref(port), tmp_path)
        try:
            fetched = await client.fetch()
            assert (fetched.by_name["t"].observed_at, fetched.by_name["t"].success) == (now - 1, True)
        finally:
            await client.close()
    assert threads and threads[0] is not threading.main_thread()


def test_parse_status_keeps_the_comparable_facts_in_a_facts_shape_and_size() -> None:
    """A v1 document's ``last`` already carries facts and stage durations: the verdict compares them."""
    last = {
        "started_at": 5.0,
        "success": False,
        "failure": "transfer_incomplete",
        "stage": "transfer",
        "stage_durations": {"connect": 0.01, "transfer": 2.5, "warp": 1.0, "http": float("nan")},
        "facts": {
            "bytes_moved": 1048576,
            "throughput_bps": 2e6,
            "tls_issuer": "Example CA",
            "addresses": ["198.51.100.1"],
            "huge": "x" * 10_000,
            "nan": float("nan"),
            "nested": {"a": 1},
            "mixed": ["a", 1],
        },
    }
    doc = {
        "targets": [
            {"name": "a", "last": last},
            {"name": "newer", "last": {"started_at": 6, "success": False, "failure": "x_new", "stage": "y"}},
            {
                "name": "odd",
                "last": {"started_at": 6, "success": True, "facts": [1, 2], "stage_durations": 3},
            },
        ]
    }
    parsed = parse_status(doc, "abroad")
    a = parsed["a"]
    assert (a.failure, a.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER)
    assert a.stage_durations == {"connect": 0.01, "transfer": 2.5}
    assert a.facts == {
        "bytes_moved": 1048576,
        "throughput_bps": 2e6,
        "tls_issuer": "Example CA",
        "addresses": ["198.51.100.1"],
    }
    # values a newer reachwatch may use are not errors: the observation stays, without them
    assert (parsed["newer"].failure, parsed["newer"].stage, parsed["newer"].success) == (None, None, False)
    assert (parsed["odd"].facts, parsed["odd"].stage_durations) == ({}, {})


async def test_a_reference_that_stays_down_warns_once_not_every_fetch(tmp_path: Path) -> None:
    client = ReferenceClient(ref(free_port()), tmp_path)
    try:
        with capture_logs() as logs:
            for _ in range(3):
                assert not await client.refresh()
    finally:
        await client.close()
    levels = [(e["event"], e["log_level"]) for e in logs if e["event"] == "reference_unavailable"]
    assert levels == [("reference_unavailable", "warning")] + [("reference_unavailable", "debug")] * 2


async def test_deeply_nested_json_is_a_failed_fetch_not_a_crash(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"[" * 200_000 + b"]" * 200_000, content_type="application/json")

    async with reference_server(handler) as (port, _):
        client = ReferenceClient(ref(port), tmp_path)
        try:
            assert not await client.refresh()
        finally:
            await client.close()


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://ref.example.org:10491", False),
        ("http://203.0.113.7", False),
        ("https://ref.example.org", True),
        ("http://127.0.0.1:10491", True),  # an SSH or stunnel tunnel ending on this host
        ("http://[::1]:10491", True),
        ("http://localhost:10491", True),
    ],
)
def test_a_reference_is_never_read_in_plain_http_across_the_network(url: str, allowed: bool) -> None:
    """Plain HTTP would hand the password and the answers, which decide verdicts, to the censor on the
    path (credentials or not: a forged "reached from abroad" makes every dead server "blocked"); only a
    loopback tunnel may carry it unencrypted."""
    for fields in (
        {"name": "abroad", "url": url, "username": "rw", "password_env": "X"},
        {"name": "abroad", "url": url},
    ):
        if allowed:
            ReferenceVantage(**fields)
        else:
            with pytest.raises(ValueError, match="https"):
                ReferenceVantage(**fields)
