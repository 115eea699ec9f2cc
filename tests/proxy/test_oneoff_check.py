"""`reachwatch check THING ...` with no target list: real proxies (microsocks with a password, ss-server),
a plain TCP port and a TLS port, judged by the controls of a config, secrets gone afterwards."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.proxy.conftest import echo_canary, microsocks, ss_server
from tests.servers import LOOPBACK, hold_open, tcp_server

pytestmark = pytest.mark.slow


async def rw(*args: str, env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reachwatch",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, json.loads(out or b"null"), err.decode()


async def test_one_off_things_are_probed_for_real_and_judged_by_the_controls(tmp_path: Path) -> None:
    ca = trustme.CA()
    tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(tls_ctx)
    userinfo = base64.urlsafe_b64encode(b"chacha20-ietf-poly1305:one-off key").decode().rstrip("=")
    cfg = tmp_path / "controls.yaml"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    async with echo_canary() as canary, tcp_server(hold_open, ssl_ctx=tls_ctx) as tls_port:
        cfg.write_text(
            "scheduler: {min_destination_spacing: 1ms, per_destination: 8}\n"
            "defaults: {timeout: 20s}\n"
            f"controls: {{international: [{{name: abroad, kind: tcp, host: {LOOPBACK}, port: {canary}}}]}}\n"
        )
        with (
            microsocks("probe", "s0cks") as socks_port,
            ss_server("chacha20-ietf-poly1305", "one-off key") as ss_port,
        ):
            code, doc, err = await rw(
                "check",
                "--config",
                str(cfg),
                "--json",
                "--canary",
                f"{LOOPBACK}:{canary}",
                f"socks5://probe:s0cks@{LOOPBACK}:{socks_port}",
                f"ss://{userinfo}@{LOOPBACK}:{ss_port}",
                f"{LOOPBACK}:{canary}",
                f"tls://{LOOPBACK}:{tls_port}",
                env=env,
            )
    assert doc is not None, err
    assert doc["vantage"]["state"] == "online", err
    rows = {t["name"]: t for t in doc["targets"]}
    assert list(rows) == ["abroad", "check-1-socks5", "check-2-shadowsocks", "check-3-tcp", "check-4-tls"]
    for name in ("check-1-socks5", "check-2-shadowsocks", "check-3-tcp"):
        assert rows[name]["verdict"] == "reachable", rows[name]
    # data went through the proxies to the canary, not only a handshake
    assert rows["check-1-socks5"]["last"]["facts"]["bytes_moved"] > 0
    # the TLS port's certificate is from a CA nobody trusts: judged, not blocked without evidence
    assert (rows["check-4-tls"]["verdict"], rows["check-4-tls"]["last"]["failure"]) == (
        "unreachable",
        "ssl_unknown_authority",
    )
    assert code == 1
    # the one-off targets are private (the user's own endpoints): no address in what is printed
    assert str(socks_port) not in json.dumps(rows["check-1-socks5"])
    # the password went to a private temporary file that is gone now
    assert list(tmp.iterdir()) == []
