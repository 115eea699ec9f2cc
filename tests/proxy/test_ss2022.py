"""The shadowsocks probe's 2022 edition (SIP022) against a spec-derived test server, and its pieces.

The peer is ``tests/proxy/ss2022_server.py``, not a packaged server: no Debian or PyPI package here
speaks SIP022 (see that module). It shares no code with ``reachwatch.formats.ss2022`` or
``reachwatch.vpn.ss2022``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest
import yaml
from blake3 import blake3

from reachwatch.config.ssuri import parse_ss_uri
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage
from reachwatch.formats.ss2022 import decode_psk, session_subkey
from reachwatch.importers import import_files
from reachwatch.probes.base import Services
from tests.probes.util import run
from tests.proxy.conftest import secret_file
from tests.proxy.ss2022_server import ss2022_server
from tests.servers import LOOPBACK, Handler, tcp_server

PSK16 = bytes(range(16))
PSK32 = bytes(range(100, 132))
METHODS = {"2022-blake3-aes-128-gcm": PSK16, "2022-blake3-aes-256-gcm": PSK32}
CANARY_LINE = b"RWCANARY "


def target(port: int, canary: int, method: str, key: Path, **extra: object) -> dict[str, object]:
    return {
        "kind": "shadowsocks",
        "host": LOOPBACK,
        "port": port,
        "method": method,
        "password_file": str(key),
        "canary": {"host": LOOPBACK, "port": canary},
        "data_stage": {"volume": 200 * 1024, "min_lifetime": "0s", "stall_timeout": "1s"},
        "response_timeout": "1s",
        **extra,
    }


def recording_tap(port: int, sent: bytearray, received: bytearray) -> Handler:
    """A TCP relay to ``port`` keeping the first read in each direction (our request's first write,
    the server's first answer)."""

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bytearray) -> None:
        while data := await src.read(65536):
            if not keep:
                keep.extend(data)
            dst.write(data)
            await dst.drain()
        dst.close()

    async def tap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(LOOPBACK, port)
        try:
            await asyncio.gather(pipe(reader, up_w, sent), pipe(up_r, writer, received))
        finally:
            up_w.close()

    return tap


def key_file(tmp: Path, psk: bytes, name: str = "psk") -> Path:
    return secret_file(tmp, name, base64.b64encode(psk).decode() + "\n")


def test_session_subkey_is_blake3_derive_key_of_psk_and_salt() -> None:
    salt = bytes.fromhex("00112233445566778899aabbccddeeff")
    expected = blake3(PSK16 + salt, derive_key_context="shadowsocks 2022 session subkey").digest(16)
    assert session_subkey(PSK16, salt) == expected
    # the key length follows the PSK, and the salt matters
    assert len(session_subkey(PSK32, salt * 2)) == 32
    assert session_subkey(PSK16, salt) != session_subkey(PSK16, bytes(16))
    # a different context (e.g. a typo in the constant) would give another key
    assert expected != blake3(PSK16 + salt, derive_key_context="shadowsocks 2022 session subkey ").digest(16)


def test_psk_must_be_base64_of_the_method_key_length() -> None:
    assert decode_psk("2022-blake3-aes-256-gcm", base64.b64encode(PSK32).decode()) == PSK32
    with pytest.raises(ValueError, match="32 bytes, got 16"):
        decode_psk("2022-blake3-aes-256-gcm", base64.b64encode(PSK16).decode())
    with pytest.raises(ValueError, match="not base64"):
        decode_psk("2022-blake3-aes-128-gcm", "correct horse battery staple")  # a 2017-style password


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
async def test_relay_through_2022_server_echoes_canary_and_pushes(
    method: str, canary: int, tmp_path: Path
) -> None:
    psk = METHODS[method]
    async with ss2022_server(method, psk) as (server, port):
        result = await run(target(port, canary, method, key_file(tmp_path, psk)))
    assert result.success, result
    assert result.facts["bytes_moved"] == 200 * 1024
    assert server.accepted == 1 and server.rejections == []
    assert "clock_skew_s" not in result.facts  # same clock: nothing worth a fact


@pytest.mark.slow
async def test_wrong_psk_gets_silence_as_protocol_no_response_not_blocking(
    canary: int, tmp_path: Path
) -> None:
    method = "2022-blake3-aes-256-gcm"
    async with ss2022_server(method, PSK32) as (server, port):
        start = time.monotonic()
        result = await run(target(port, canary, method, key_file(tmp_path, bytes(32))))
    assert (result.failure, result.stage) == (Failure.PROTOCOL_NO_RESPONSE, Stage.PROTOCOL_HANDSHAKE)
    assert result.evidence is None
    assert server.rejections == ["auth"]
    assert time.monotonic() - start < 3


@pytest.mark.slow
async def test_replayed_request_is_refused_by_the_server(canary: int, tmp_path: Path) -> None:
    """Record the probe's bytes on the way in, replay them: the server that saw the salt stays silent,
    a fresh server (empty salt pool) answers the very same bytes - so it is the salt that is refused."""
    method = "2022-blake3-aes-128-gcm"
    recorded = bytearray()

    async with ss2022_server(method, PSK16) as (server, port):
        tap = recording_tap(port, recorded, bytearray())

        async with tcp_server(tap) as tapped:
            first = await run(target(tapped, canary, method, key_file(tmp_path, PSK16)))
        assert first.success, first

        async def replay(to_port: int) -> bytes:
            r, w = await asyncio.open_connection(LOOPBACK, to_port)
            w.write(bytes(recorded))
            await w.drain()
            try:
                async with asyncio.timeout(1.0):
                    return await r.read(65536)
            except TimeoutError:
                return b""
            finally:
                w.close()

        assert await replay(port) == b""
        assert server.rejections == ["replay"]
    async with ss2022_server(method, PSK16) as (fresh, fresh_port):
        assert len(await replay(fresh_port)) > 16 + 27 + 16
        assert fresh.rejections == []


@pytest.mark.slow
async def test_answer_replayed_from_another_session_fails_the_echoed_salt_check(
    canary: int, tmp_path: Path
) -> None:
    """A middlebox replaying a genuine server answer: it decrypts with our PSK and its clock is fine,
    but it echoes another request's salt. Without that check it would get as far as the canary."""
    method = "2022-blake3-aes-128-gcm"
    key = key_file(tmp_path, PSK16)
    answer = bytearray()
    async with (
        ss2022_server(method, PSK16) as (_, port),
        tcp_server(recording_tap(port, bytearray(), answer)) as tapped,
    ):
        assert (await run(target(tapped, canary, method, key))).success

    async def replayer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(bytes(answer))
        await writer.drain()
        await reader.read(65536)

    async with tcp_server(replayer) as replaying:
        result = await run(target(replaying, canary, method, key))
    assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)


@pytest.mark.slow
async def test_skewed_server_answer_is_refused_as_clock_skew_not_blocking(
    canary: int, tmp_path: Path
) -> None:
    method = "2022-blake3-aes-128-gcm"
    # a lenient server (wide window) answers despite a clock two minutes behind; SIP022 makes us refuse it
    async with ss2022_server(method, PSK16, clock_offset=-120, max_skew=3600) as (server, port):
        result = await run(target(port, canary, method, key_file(tmp_path, PSK16)))
    assert (result.failure, result.stage) == (Failure.PROTOCOL_NO_RESPONSE, Stage.PROTOCOL_HANDSHAKE)
    assert result.evidence is None
    assert result.facts["clock_skew_rejected"] is True
    assert -122 <= float(result.facts["clock_skew_s"]) <= -118  # type: ignore[arg-type]
    assert server.accepted == 1


@pytest.mark.slow
async def test_silence_after_drifting_skew_is_flagged_as_suspected_clock(canary: int, tmp_path: Path) -> None:
    method = "2022-blake3-aes-256-gcm"
    key = key_file(tmp_path, PSK32)
    services = Services()  # one daemon: the skew it saw explains its later silence
    async with ss2022_server(method, PSK32, clock_offset=20) as (server, port):
        drifting = await run(target(port, canary, method, key), services=services)
        assert drifting.success, drifting
        assert 19 <= float(drifting.facts["clock_skew_s"]) <= 21  # type: ignore[arg-type]
        server.clock_offset = 45  # past the 30 s window: the server now ignores us, like a censor would
        silent = await run(target(port, canary, method, key), services=services)
        other_run = await run(target(port, canary, method, key))  # another run saw no skew there
    assert server.rejections == ["clock", "clock"]
    assert (silent.failure, silent.stage) == (Failure.PROTOCOL_NO_RESPONSE, Stage.PROTOCOL_HANDSHAKE)
    assert silent.evidence is None
    assert silent.facts["clock_skew_suspected"] is True
    assert 19 <= float(silent.facts["clock_skew_s"]) <= 21  # type: ignore[arg-type]
    assert other_run.failure is Failure.PROTOCOL_NO_RESPONSE
    assert "clock_skew_s" not in other_run.facts and "clock_skew_suspected" not in other_run.facts


@pytest.mark.slow
async def test_silence_without_earlier_skew_carries_no_clock_fact(canary: int, tmp_path: Path) -> None:
    method = "2022-blake3-aes-256-gcm"
    async with ss2022_server(method, PSK32, clock_offset=45) as (server, port):
        result = await run(target(port, canary, method, key_file(tmp_path, PSK32)))
    assert server.rejections == ["clock"]
    assert result.failure is Failure.PROTOCOL_NO_RESPONSE
    assert "clock_skew_s" not in result.facts and "clock_skew_suspected" not in result.facts


@pytest.mark.slow
async def test_echo_service_reflecting_a_2022_request_is_a_protocol_error(
    canary: int, tmp_path: Path
) -> None:
    method = "2022-blake3-aes-128-gcm"
    result = await run(target(canary, canary, method, key_file(tmp_path, PSK16)))
    assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)


@pytest.mark.slow
async def test_key_taken_from_2022_ss_uri_file(canary: int, tmp_path: Path) -> None:
    method = "2022-blake3-aes-256-gcm"
    encoded = base64.b64encode(PSK32).decode().replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    async with ss2022_server(method, PSK32) as (_, port):
        uris = secret_file(tmp_path, "links.txt", f"ss://{method}:{encoded}@{LOOPBACK}:{port}#mine\n")
        # the YAML's method is the default: the URI's own method and key win
        result = await run(
            target(
                port, canary, "aes-128-gcm", key_file(tmp_path, b"x"), password_file=None, uri_file=str(uris)
            )
        )
    assert result.success, result


@pytest.mark.parametrize("encode", [False, True], ids=["raw", "percent-encoded"])
def test_sip002_uri_with_2022_method_and_base64_psk_parses(encode: bool) -> None:
    psk = base64.b64encode(bytes([0xFB, 0xFF] * 16)).decode()  # "+//7..." : holds "+", "/" and "="
    assert "/" in psk and "+" in psk and psk.endswith("=")
    userinfo = psk.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D") if encode else psk
    uri = parse_ss_uri(f"ss://2022-blake3-aes-256-gcm:{userinfo}@ss.example.net:8388/?outline=1#Tokyo")
    assert (uri.method, uri.password, uri.host, uri.port, uri.tag) == (
        "2022-blake3-aes-256-gcm",
        psk,
        "ss.example.net",
        8388,
        "Tokyo",
    )
    assert decode_psk(uri.method, uri.password) == bytes([0xFB, 0xFF] * 16)


def test_import_of_2022_uri_writes_the_psk_to_a_secret_file(tmp_path: Path) -> None:
    psk = base64.b64encode(PSK16).decode()
    links = secret_file(tmp_path, "links.txt", f"ss://2022-blake3-aes-128-gcm:{psk}@ss.example.net:443#k\n")
    out = tmp_path / "out"
    (entry,) = yaml.safe_load(import_files([str(links)], canary="echo.example.org:7", output_dir=str(out)))[
        "targets"
    ]
    assert entry["method"] == "2022-blake3-aes-128-gcm"
    assert Path(str(entry["password_file"])).read_text() == psk


def test_import_of_2022_uri_with_wrong_key_size_is_refused_without_quoting_it(tmp_path: Path) -> None:
    psk = base64.b64encode(PSK32).decode()  # 32 bytes for a 16-byte method
    links = secret_file(tmp_path, "links.txt", f"ss://2022-blake3-aes-128-gcm:{psk}@ss.example.net:443\n")
    with pytest.raises(ConfigError, match="16 bytes, got 32") as info:
        import_files([str(links)], canary="echo.example.org:7")
    assert psk not in str(info.value)
