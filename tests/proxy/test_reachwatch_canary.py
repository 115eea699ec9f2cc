"""The proxy kinds with ``canary.mode: reachwatch``: real microsocks, tinyproxy and ss-server carrying the
keyed greeting to a real ``reachwatch canary`` (in-process, on 127.0.0.1), then the data stage through its
echo. Another secret meets the canary's silence; a plain echo service cannot pass for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from reachwatch.failures import Failure, Stage
from tests.canarylab import free_ports, running_canary
from tests.canarylab import secret_file as canary_secret
from tests.probes.util import run
from tests.proxy.conftest import echo_canary, microsocks, secret_file, ss_server, tinyproxy
from tests.servers import LOOPBACK

pytestmark = pytest.mark.slow

DATA = {"volume": "64KiB", "min_lifetime": "1s", "stall_timeout": "1s"}


def keyed(port: int, secret: Path) -> dict[str, object]:
    return {"host": LOOPBACK, "port": port, "mode": "reachwatch", "secret_file": str(secret)}


async def test_socks5_and_http_proxy_reach_the_canary_and_move_data_through_its_echo(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    async with running_canary(tmp_path, [port], []) as canary:
        with microsocks() as socks:
            through_socks = await run(
                {
                    "kind": "socks5",
                    "host": LOOPBACK,
                    "port": socks,
                    "canary": keyed(port, canary_secret(tmp_path)),
                    "data_stage": DATA,
                }
            )
        with tinyproxy(tmp_path, port) as proxy:
            through_http = await run(
                {
                    "kind": "http_proxy",
                    "host": LOOPBACK,
                    "port": proxy,
                    "canary": keyed(port, canary_secret(tmp_path)),
                    "data_stage": DATA,
                }
            )
        sessions = canary.counters.echo_sessions
    for result in (through_socks, through_http):
        assert result.success, result
        assert result.facts["bytes_moved"] == 64 * 1024 + 256  # the volume and one lifetime echo
    assert sessions == 2


async def test_shadowsocks_carries_the_keyed_greeting_in_its_first_write(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    key = secret_file(tmp_path, "ss.key", "correct horse battery staple\n")
    async with running_canary(tmp_path, [port], []):
        with ss_server("aes-256-gcm", "correct horse battery staple") as ss:
            result = await run(
                {
                    "kind": "shadowsocks",
                    "host": LOOPBACK,
                    "port": ss,
                    "method": "aes-256-gcm",
                    "password_file": str(key),
                    "canary": keyed(port, canary_secret(tmp_path)),
                    "data_stage": DATA,
                }
            )
    assert result.success, result
    assert result.facts["bytes_moved"] == 64 * 1024 + 256


async def test_another_secret_meets_silence_and_an_echo_service_cannot_pass_for_the_canary(
    tmp_path: Path,
) -> None:
    (port,) = free_ports(1)
    other = tmp_path / "other"
    other.mkdir()
    wrong_secret = canary_secret(other, content="not the canary's secret, 16+")
    async with running_canary(tmp_path, [port], []) as canary, echo_canary() as echo:
        with microsocks() as socks:
            wrong = await run(
                {"kind": "socks5", "host": LOOPBACK, "port": socks, "canary": keyed(port, wrong_secret)}
            )
            echoed = await run(
                {
                    "kind": "socks5",
                    "host": LOOPBACK,
                    "port": socks,
                    "canary": keyed(echo, canary_secret(tmp_path)),
                }
            )
        refused = canary.counters.requests[("tcp", "mac")]
    # the canary closes without a byte: the tunnel ends before an answer, never a success
    assert (wrong.failure, wrong.stage) == (Failure.EOF_ERROR, Stage.TUNNEL)
    assert refused == 1
    # an echo service hands our own request back: no keyed reply, so not the canary
    assert (echoed.failure, echoed.stage) == (Failure.CANARY_MISMATCH, Stage.TUNNEL)
