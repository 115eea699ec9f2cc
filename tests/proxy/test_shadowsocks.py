"""The shadowsocks probe against a real ss-server (shadowsocks-libev), with an echo canary on loopback."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from reachwatch.failures import Failure, Stage
from reachwatch.formats.shadowsocks import evp_bytes_to_key
from tests.probes.util import run
from tests.proxy.conftest import cut_after, liar, secret_file, ss_server
from tests.servers import LOOPBACK, free_port, tcp_server

pytestmark = pytest.mark.slow


def target(port: int, canary: int, method: str, **extra: object) -> dict[str, object]:
    return {
        "kind": "shadowsocks",
        "host": LOOPBACK,
        "port": port,
        "method": method,
        "canary": {"host": LOOPBACK, "port": canary},
        "data_stage": {"volume": 128 * 1024, "min_lifetime": "0s", "stall_timeout": "1s"},
        "response_timeout": "1s",
        **extra,
    }


def test_evp_bytes_to_key_matches_openssl_md5_chain() -> None:
    # known answer: md5("foobar") then md5(md5("foobar") + "foobar"), as OpenSSL's EVP_BytesToKey
    assert evp_bytes_to_key(b"foobar", 32).hex() == (
        "3858f62230ac3c915f300c664312c63f568378529614d22ddb49237d2f60bfdf"
    )


@pytest.mark.parametrize("method", ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"])
async def test_relay_through_ss_server_echoes_canary_and_pushes(
    method: str, canary: int, tmp_path: Path
) -> None:
    key = secret_file(tmp_path, "key", "correct horse battery staple\n")
    with ss_server(method, "correct horse battery staple") as port:
        result = await run(target(port, canary, method, password_file=str(key)))
    assert result.success, result
    assert result.facts["bytes_moved"] == 128 * 1024
    assert isinstance(result.facts["throughput_bps"], float) and result.facts["throughput_bps"] > 0


async def test_key_taken_from_ss_uri_file(canary: int, tmp_path: Path) -> None:
    with ss_server("aes-256-gcm", "pa ss") as port:
        # SIP002 with base64url userinfo of "aes-256-gcm:pa ss"
        uris = secret_file(tmp_path, "links.txt", f"ss://YWVzLTI1Ni1nY206cGEgc3M@{LOOPBACK}:{port}#mine\n")
        result = await run(target(port, canary, "aes-256-gcm", uri_file=str(uris)))
    assert result.success, result


async def test_wrong_key_gets_silence_or_close_at_handshake_not_blocking(canary: int, tmp_path: Path) -> None:
    key = secret_file(tmp_path, "key", "not the key")
    with ss_server("chacha20-ietf-poly1305", "the key") as port:
        start = time.monotonic()
        result = await run(target(port, canary, "chacha20-ietf-poly1305", password_file=str(key)))
    assert result.stage == Stage.PROTOCOL_HANDSHAKE
    assert result.failure in (Failure.PROTOCOL_NO_RESPONSE, Failure.EOF_ERROR, Failure.CONNECTION_RESET)
    assert result.evidence is None
    assert time.monotonic() - start < 4


async def test_canary_unreachable_from_server_looks_like_no_answer(tmp_path: Path) -> None:
    key = secret_file(tmp_path, "key", "k")
    with ss_server("aes-128-gcm", "k") as port:
        result = await run(target(port, free_port(), "aes-128-gcm", password_file=str(key)))
    assert result.stage == Stage.PROTOCOL_HANDSHAKE
    assert result.failure in (Failure.PROTOCOL_NO_RESPONSE, Failure.EOF_ERROR)


async def test_wrong_answer_relayed_is_canary_mismatch(tmp_path: Path) -> None:
    key = secret_file(tmp_path, "key", "k")
    async with tcp_server(liar) as impostor:
        with ss_server("aes-128-gcm", "k") as port:
            result = await run(target(port, impostor, "aes-128-gcm", password_file=str(key)))
    assert (result.failure, result.stage) == (Failure.CANARY_MISMATCH, Stage.TUNNEL)


async def test_cut_after_40k_through_ss_is_transfer_incomplete(tmp_path: Path) -> None:
    key = secret_file(tmp_path, "key", "k")
    async with tcp_server(cut_after(40_000)) as cut:
        with ss_server("aes-128-gcm", "k") as port:
            result = await run(target(port, cut, "aes-128-gcm", password_file=str(key)))
    assert (result.failure, result.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER)
    assert result.facts["bytes_moved"] == result.facts["cut_after_bytes"] == 40_000 - 2 * 42


async def test_echo_service_reflecting_our_bytes_is_not_taken_for_a_server(
    canary: int, tmp_path: Path
) -> None:
    key = secret_file(tmp_path, "key", "k")
    # the canary is an echo service: it returns our salt and chunks, which decrypt with our own key
    result = await run(target(canary, canary, "aes-128-gcm", password_file=str(key)))
    assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)


async def test_garbage_answer_fails_authentication_as_protocol_error(canary: int, tmp_path: Path) -> None:
    async def noise(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(os.urandom(4096))
        await writer.drain()
        await reader.read(4096)

    key = secret_file(tmp_path, "key", "k")
    async with tcp_server(noise) as port:
        result = await run(target(port, canary, "aes-128-gcm", password_file=str(key)))
    assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
