"""The socks5 probe against real microsocks and dante servers, with an echo canary on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from reachwatch.config.targets.shadowsocks import ShadowsocksTarget
from reachwatch.config.targets.socks5 import Socks5Target
from reachwatch.failures import Failure, Stage
from tests.probes.util import run
from tests.proxy.conftest import cut_after, danted, liar, microsocks, secret_file
from tests.servers import LOOPBACK, free_port, tcp_server

pytestmark = pytest.mark.slow


def target(port: int, canary: int | None, lifetime: str = "0s", **extra: object) -> dict[str, object]:
    t: dict[str, object] = {"kind": "socks5", "host": LOOPBACK, "port": port, **extra}
    if canary is not None:
        t["canary"] = {"host": LOOPBACK, "port": canary}
        t["data_stage"] = {"volume": "64KiB", "min_lifetime": lifetime, "stall_timeout": "1s"}
    return t


async def test_tunnel_through_microsocks_echoes_canary_and_measures_throughput(canary: int) -> None:
    with microsocks() as port:
        result = await run(target(port, canary, lifetime="1.5s"))
    assert result.success, result
    assert result.facts["socks_auth"] == "none"
    # the volume, then one 256-byte echo a second until the flow had lived 1.5 s
    assert result.facts["bytes_moved"] == 64 * 1024 + 2 * 256
    assert result.facts["transfer_goal_bytes"] == 64 * 1024
    assert isinstance(result.facts["throughput_bps"], float) and result.facts["throughput_bps"] > 0
    assert isinstance(result.facts["flow_alive_s"], float) and result.facts["flow_alive_s"] >= 1.5
    assert "cut_after_bytes" not in result.facts
    assert set(result.stage_durations) >= {"connect", "protocol_handshake", "tunnel", "transfer"}


async def test_username_password_auth_succeeds_with_password_file(canary: int, tmp_path: Path) -> None:
    pw = secret_file(tmp_path, "pw", "s3cret\n")
    with microsocks("probe", "s3cret") as port:
        result = await run(target(port, canary, username="probe", password_file=str(pw)))
    assert result.success, result
    assert result.facts["socks_auth"] == "userpass"


async def test_credentials_read_from_proxy_url_file(canary: int, tmp_path: Path) -> None:
    with microsocks("probe", "p@ss:w") as port:
        urls = secret_file(tmp_path, "urls.txt", f"# mine\nsocks5://probe:p%40ss%3Aw@{LOOPBACK}:{port}\n")
        result = await run(target(port, canary, url_file=str(urls), url_line=2))
    assert result.success, result


async def test_wrong_password_is_proxy_auth_failed_at_handshake(canary: int, tmp_path: Path) -> None:
    pw = secret_file(tmp_path, "pw", "wrong")
    with microsocks("probe", "s3cret") as port:
        result = await run(target(port, canary, username="probe", password_file=str(pw)))
    assert (result.failure, result.stage) == (Failure.PROXY_AUTH_FAILED, Stage.PROTOCOL_HANDSHAKE)


async def test_no_credentials_offered_to_auth_proxy_is_proxy_auth_failed(canary: int) -> None:
    with microsocks("probe", "s3cret") as port:
        result = await run(target(port, canary))
    assert (result.failure, result.stage) == (Failure.PROXY_AUTH_FAILED, Stage.PROTOCOL_HANDSHAKE)


async def test_refused_canary_port_is_upstream_failure_not_blocking() -> None:
    closed = free_port()
    with microsocks() as port:
        result = await run(target(port, closed))
    assert (result.failure, result.stage) == (Failure.PROXY_UPSTREAM_FAILED, Stage.TUNNEL)
    assert result.evidence is None


async def test_dante_ruleset_refusal_is_proxy_connect_refused(tmp_path: Path) -> None:
    blocked = free_port()
    with danted(tmp_path, blocked) as port:
        result = await run(target(port, blocked))
    assert (result.failure, result.stage) == (Failure.PROXY_CONNECT_REFUSED, Stage.TUNNEL)


async def test_dante_tunnel_works_for_an_allowed_port(canary: int, tmp_path: Path) -> None:
    with danted(tmp_path, free_port()) as port:
        result = await run(target(port, canary))
    assert result.success, result


async def test_wrong_answer_from_canary_side_is_canary_mismatch() -> None:
    async with tcp_server(liar) as impostor:
        with microsocks() as port:
            result = await run(target(port, impostor))
    assert (result.failure, result.stage) == (Failure.CANARY_MISMATCH, Stage.TUNNEL)


async def test_cut_after_20k_is_transfer_incomplete_with_the_cut_point() -> None:
    async with tcp_server(cut_after(20_000)) as cut:
        with microsocks() as port:
            result = await run(target(port, cut))
    assert (result.failure, result.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER)
    # the 42-byte canary line went first, so the push saw the rest of the 20000 bytes
    assert result.facts["bytes_moved"] == result.facts["cut_after_bytes"] == 20_000 - 42
    assert result.facts["transfer_goal_bytes"] == 64 * 1024
    cut_s = result.facts["cut_after_s"]
    assert isinstance(cut_s, float) and 1.0 <= cut_s < 2.0  # found by the 1 s stall timeout


async def test_without_canary_a_live_handshake_is_enough() -> None:
    with microsocks() as port:
        result = await run(target(port, None))
    assert result.success, result
    assert "tunnel" not in result.stage_durations


async def test_http_server_in_place_of_socks_is_protocol_error() -> None:
    async with tcp_server(liar) as port:
        result = await run(target(port, None))
    assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)


def test_private_proxy_redacts_proxy_and_canary_hosts() -> None:
    canary = {"host": "canary.example.org", "port": 7}
    socks = Socks5Target.model_validate(
        {"name": "p", "kind": "socks5", "host": "px.example.net", "port": 1080, "canary": canary}
    )
    assert socks.sensitive_values() == ["px.example.net", "canary.example.org"]
    ss = ShadowsocksTarget.model_validate(
        {"name": "s", "kind": "shadowsocks", "host": "ss.example.net", "port": 8388, "canary": canary}
    )
    assert ss.sensitive_values() == ["ss.example.net", "canary.example.org"]
