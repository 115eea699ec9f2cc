"""The HTTP endpoint: metrics (text and OpenMetrics), health, readiness, reload, status; TLS + basic auth."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import trustme

from reachwatch.config.load import parse_config
from reachwatch.config.webconfig import WebSecurity, load_web_security
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage
from reachwatch.metrics import DaemonStatus, build_registry
from reachwatch.model import ProbeResult
from reachwatch.reference import parse_status
from reachwatch.state import StateStore
from reachwatch.web import WebServer, parse_listen_address, status_document

CONFIG = """
vantage: {name: test-vantage}
targets:
  - {name: hidden-bridge, kind: tcp, host: 192.0.2.99, port: 443, private: true}
  - {name: open-site, kind: tcp, host: 127.0.0.1, port: 9}
"""


class Backend:
    """The daemon side of the web server, over a real StateStore and collector."""

    def __init__(self) -> None:
        loaded = parse_config(CONFIG, "t.yaml", Path.cwd())
        self.store = StateStore()
        for t in loaded.config.all_targets():
            self.store.ensure(t, None)
        self.store.targets["hidden-bridge"].record(
            ProbeResult(
                target="hidden-bridge",
                kind="tcp",
                started_at=time.time(),
                duration_s=1.5,
                success=False,
                failure=Failure.GENERIC_TIMEOUT_ERROR,
                stage=Stage.CONNECT,
            )
        )
        self.registry = build_registry(self.store, DaemonStatus(config=loaded.config))
        self.is_ready = False
        self.reload_answer = (True, "config reloaded")
        self.reloads = 0

    def ready(self) -> bool:
        return self.is_ready

    async def reload(self) -> tuple[bool, str]:
        self.reloads += 1
        return self.reload_answer

    def status(self) -> dict[str, Any]:
        return status_document(self.store, "test-vantage")

    async def incidents_document(self, query: Mapping[str, str]) -> dict[str, Any]:
        return {"incidents": [], "patterns": [], "query": dict(query)}


@pytest.fixture
async def plain() -> AsyncIterator[tuple[WebServer, Backend]]:
    backend = Backend()
    server = WebServer(backend, "127.0.0.1:0", WebSecurity())
    await server.start()
    yield server, backend
    await server.stop()


async def test_metrics_in_prometheus_text_and_negotiated_openmetrics(
    plain: tuple[WebServer, Backend],
) -> None:
    server, _ = plain
    url = f"http://127.0.0.1:{server.port}/metrics"
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await r.text()
        series = 'reachwatch_probe_success{group="default",kind="tcp",role="target",target="hidden-bridge"}'
        assert f"{series} 0.0" in text
        assert "192.0.2.99" not in text
        async with s.get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
            assert (await r.text()).endswith("# EOF\n")


async def test_health_ready_and_reload(plain: tuple[WebServer, Backend]) -> None:
    server, backend = plain
    base = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/-/healthy") as r:
            assert r.status == 200
        async with s.get(f"{base}/-/ready") as r:
            assert r.status == 503
        backend.is_ready = True
        async with s.get(f"{base}/-/ready") as r:
            assert r.status == 200
        async with s.post(f"{base}/-/reload") as r:
            assert r.status == 200
        backend.reload_answer = (False, "c.yaml: targets[0].port: unknown key")
        async with s.post(f"{base}/-/reload") as r:
            assert r.status == 500
            assert "targets[0].port: unknown key" in await r.text()
        async with s.get(f"{base}/-/reload") as r:
            assert r.status == 405  # a GET must not reload
    assert backend.reloads == 2


async def test_status_json_shape_is_what_a_reference_vantage_reads(plain: tuple[WebServer, Backend]) -> None:
    server, _ = plain
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{server.port}/api/v1/status") as r:
        assert r.status == 200
        raw = await r.text()
        doc = await r.json()
    assert doc["version"] and doc["vantage"]["name"] == "test-vantage"
    assert doc["vantage"]["state"] == "unknown"
    by_name = {t["name"]: t for t in doc["targets"]}
    assert set(by_name) == {"hidden-bridge", "open-site"}
    hidden = by_name["hidden-bridge"]
    assert {"kind", "group", "role", "verdict", "technique", "verdict_since", "last"} <= set(hidden)
    assert hidden["last"]["failure"] == "generic_timeout_error" and hidden["last"]["stage"] == "connect"
    assert by_name["open-site"]["last"] is None
    assert "192.0.2.99" not in raw
    parsed = parse_status(doc)
    assert list(parsed) == ["hidden-bridge"]
    seen = parsed["hidden-bridge"]
    assert (seen.observed_at, seen.success, seen.stage) == (hidden["last"]["started_at"], False, "connect")


def test_listen_address_forms() -> None:
    assert parse_listen_address("127.0.0.1:10491") == ("127.0.0.1", 10491)
    assert parse_listen_address("[::1]:80") == ("::1", 80)
    assert parse_listen_address(":10491") == ("0.0.0.0", 10491)
    with pytest.raises(ConfigError, match=r"'localhost' must be host:port, \[IPv6\]:port or :port"):
        parse_listen_address("localhost")


# --- TLS + basic auth ------------------------------------------------------------------------------

PASSWORD = "correct horse battery staple"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    (tmp_path / "server.key").chmod(0o600)
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    web_yml = tmp_path / "web-config.yml"
    web_yml.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    return ca, web_yml


async def test_https_with_basic_auth(tls_files: tuple[trustme.CA, Path]) -> None:
    ca, web_yml = tls_files
    backend = Backend()
    server = WebServer(backend, "127.0.0.1:0", load_web_security(web_yml))
    await server.start()
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    url = f"https://127.0.0.1:{server.port}/metrics"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as s:
            async with s.get(url) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"].startswith("Basic")
            async with s.get(url, headers=_basic("prometheus", "wrong")) as r:
                assert r.status == 401
            async with s.get(url, headers=_basic("nobody", PASSWORD)) as r:
                assert r.status == 401
            for _ in range(2):  # the second answer comes from the cache
                async with s.get(url, headers=_basic("prometheus", PASSWORD)) as r:
                    assert r.status == 200
                    assert "reachwatch_probe_success" in await r.text()
            assert len(server.auth._cache) == 1  # only the success is cached
        # a client that does not trust the CA cannot even complete the handshake
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await s.get(url)
        # plain HTTP to the TLS port gets nothing useful
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientError):
                await s.get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        await server.stop()


@pytest.mark.slow
def test_promtool_accepts_the_same_web_config(tls_files: tuple[trustme.CA, Path]) -> None:
    promtool = shutil.which("promtool")
    assert promtool
    _, web_yml = tls_files
    proc = subprocess.run(
        [promtool, "check", "web-config", str(web_yml)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    load_web_security(web_yml)  # and we accept it too


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("basic_auth_users:\n  u: plaintext\n", "basic_auth_users: user 'u': password must be a bcrypt hash"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher: x\n",
            "tls_server_config.cipher: unknown key",
        ),
        ("tls_server_config:\n  cert_file: a\n", "tls_server_config.key_file: required field is missing"),
        ("basic_auth_users: [\n", "invalid YAML"),
    ],
)
def test_bad_web_config_is_one_line_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_web_security(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_group_readable_tls_key_is_refused(tls_files: tuple[trustme.CA, Path]) -> None:
    _, web_yml = tls_files
    (web_yml.parent / "server.key").chmod(0o640)
    with pytest.raises(ConfigError, match=r"readable by group or others \(mode 640\); chmod 600 it"):
        load_web_security(web_yml)


async def test_reload_swaps_users_and_renewed_certificate_without_restart(
    tls_files: tuple[trustme.CA, Path],
) -> None:
    old_ca, web_yml = tls_files
    server = WebServer(Backend(), "127.0.0.1:0", load_web_security(web_yml))
    await server.start()
    url = f"https://127.0.0.1:{server.port}/-/healthy"
    try:
        # renew: a certificate from another CA, and a new password
        new_ca = trustme.CA()
        cert = new_ca.issue_cert("127.0.0.1")
        cert.private_key_pem.write_to_path(str(web_yml.parent / "server.key"))
        cert.cert_chain_pems[0].write_to_path(str(web_yml.parent / "server.crt"))
        hashed = bcrypt.hashpw(b"new-password", bcrypt.gensalt(4)).decode()
        web_yml.write_text(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            f"basic_auth_users:\n  prometheus: '{hashed}'\n"
        )
        server.update_security(load_web_security(web_yml))
        ctx = ssl.create_default_context()
        new_ca.configure_trust(ctx)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
            async with s.get(url, headers=_basic("prometheus", PASSWORD)) as r:
                assert r.status == 401
            async with s.get(url, headers=_basic("prometheus", "new-password")) as r:
                assert r.status == 200
        old_ctx = ssl.create_default_context()
        old_ca.configure_trust(old_ctx)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=old_ctx)) as s:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await s.get(url)
    finally:
        await server.stop()
