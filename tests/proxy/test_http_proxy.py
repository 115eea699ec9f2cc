"""The http_proxy probe against a real tinyproxy (ConnectPort, BasicAuth) and hostile fake proxies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reachwatch.failures import Failure, Stage
from tests.probes.util import run
from tests.proxy.conftest import cut_after, liar, secret_file, tinyproxy
from tests.servers import LOOPBACK, free_port, tcp_server

pytestmark = pytest.mark.slow


def target(port: int, canary: int | None, **extra: object) -> dict[str, object]:
    t: dict[str, object] = {"kind": "http_proxy", "host": LOOPBACK, "port": port, **extra}
    if canary is not None:
        t["canary"] = {"host": LOOPBACK, "port": canary}
        t["data_stage"] = {"volume": 128 * 1024, "min_lifetime": "0s", "stall_timeout": "1s"}
    return t


async def test_connect_through_tinyproxy_echoes_canary_and_measures_throughput(
    canary: int, tmp_path: Path
) -> None:
    with tinyproxy(tmp_path, canary) as port:
        result = await run(target(port, canary))
    assert result.success, result
    assert result.facts["http_status"] == 200
    assert result.facts["bytes_moved"] == result.facts["transfer_goal_bytes"] == 128 * 1024
    assert isinstance(result.facts["throughput_bps"], float) and result.facts["throughput_bps"] > 0


async def test_basic_auth_with_password_file_succeeds(canary: int, tmp_path: Path) -> None:
    pw = secret_file(tmp_path, "pw", "hunter2")
    with tinyproxy(tmp_path, canary, basic_auth=("probe", "hunter2")) as port:
        result = await run(target(port, canary, username="probe", password_file=str(pw)))
    assert result.success, result


async def test_407_is_proxy_auth_failed_at_handshake(canary: int, tmp_path: Path) -> None:
    pw = secret_file(tmp_path, "pw", "wrong")
    with tinyproxy(tmp_path, canary, basic_auth=("probe", "hunter2")) as port:
        result = await run(target(port, canary, username="probe", password_file=str(pw)))
    assert (result.failure, result.stage) == (Failure.PROXY_AUTH_FAILED, Stage.PROTOCOL_HANDSHAKE)


async def test_port_outside_connectport_is_proxy_connect_refused(canary: int, tmp_path: Path) -> None:
    with tinyproxy(tmp_path, free_port()) as port:
        result = await run(target(port, canary))
    assert (result.failure, result.stage) == (Failure.PROXY_CONNECT_REFUSED, Stage.TUNNEL)


async def test_unreachable_canary_is_proxy_upstream_failed(tmp_path: Path) -> None:
    closed = free_port()
    with tinyproxy(tmp_path, closed) as port:
        result = await run(target(port, closed))
    assert (result.failure, result.stage) == (Failure.PROXY_UPSTREAM_FAILED, Stage.TUNNEL)
    assert result.evidence is None


async def test_without_canary_a_refusal_still_proves_a_live_proxy(tmp_path: Path) -> None:
    with tinyproxy(tmp_path, free_port()) as port:
        result = await run(target(port, None))
    assert result.success, result


async def test_cut_after_30k_is_transfer_incomplete(tmp_path: Path) -> None:
    async with tcp_server(cut_after(30_000)) as cut:
        with tinyproxy(tmp_path, cut) as port:
            result = await run(target(port, cut))
    assert (result.failure, result.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER)
    assert result.facts["bytes_moved"] == result.facts["cut_after_bytes"] == 30_000 - 42


async def test_block_page_from_canary_side_is_canary_mismatch(tmp_path: Path) -> None:
    async with tcp_server(liar) as impostor:
        with tinyproxy(tmp_path, impostor) as port:
            result = await run(target(port, impostor))
    assert (result.failure, result.stage) == (Failure.CANARY_MISMATCH, Stage.TUNNEL)


async def test_non_http_answer_is_http_invalid_response(canary: int) -> None:
    async def ssh_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        await reader.read(4096)

    async with tcp_server(ssh_banner) as port:
        result = await run(target(port, canary))
    assert (result.failure, result.stage) == (Failure.HTTP_INVALID_RESPONSE, Stage.PROTOCOL_HANDSHAKE)


async def test_endless_headers_are_bounded_as_response_too_large(canary: int) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while True:
            writer.write(b"X-Filler: " + b"a" * 100 + b"\r\n")
            await writer.drain()

    async with tcp_server(endless) as port:
        result = await run(target(port, canary))
    assert (result.failure, result.stage) == (Failure.RESPONSE_TOO_LARGE, Stage.PROTOCOL_HANDSHAKE)


@pytest.mark.parametrize(
    ("status", "failure", "stage"),
    [
        (b"407 Proxy Authentication Required", Failure.PROXY_AUTH_FAILED, Stage.PROTOCOL_HANDSHAKE),
        (b"502 Bad Gateway", Failure.PROXY_UPSTREAM_FAILED, Stage.TUNNEL),
        (b"503 Service Unavailable", Failure.PROXY_UPSTREAM_FAILED, Stage.TUNNEL),
        (b"504 Gateway Timeout", Failure.PROXY_UPSTREAM_FAILED, Stage.TUNNEL),
        (b"403 Forbidden", Failure.PROXY_CONNECT_REFUSED, Stage.TUNNEL),
        (b"418 I'm a teapot", Failure.HTTP_UNEXPECTED_STATUS_CODE, Stage.TUNNEL),
    ],
)
async def test_squid_style_status_codes_map_to_where_it_failed(
    canary: int, status: bytes, failure: Failure, stage: Stage
) -> None:
    # byte-scripted answers in the form squid sends them (squid is not packaged here)
    async def scripted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nServer: squid/5.7\r\n"
            b'Proxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n'
        )
        await writer.drain()
        await reader.read(1)

    async with tcp_server(scripted) as port:
        result = await run(target(port, canary))
    assert (result.failure, result.stage) == (failure, stage)
