"""The ``tor_relay`` and ``tor_dirport`` probes against a real Debian tor relay on loopback.

Impostors are real too: a TLS-terminating proxy in front of the real relay (what a MITM middlebox does),
a TLS server that does not speak Tor, and a listener that never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme

from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.net.torlink import link_tls_context
from tests.probes.util import run
from tests.tor.lonerelay import TorRelayProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def relay_target(relay: TorRelayProcess, **extra: object) -> dict[str, object]:
    return {
        "kind": "tor_relay",
        "host": "127.0.0.1",
        "port": relay.or_port,
        "fingerprint": relay.fingerprint,
        **extra,
    }


async def test_real_relay_proves_its_rsa_and_ed25519_identity(tor_relay_process: TorRelayProcess) -> None:
    result = await run(relay_target(tor_relay_process, ed25519_identity=tor_relay_process.ed25519_identity))
    assert result.success, result.to_dict()
    assert result.facts["tor_link_version"] == 5
    assert result.facts["tor_ed25519_identity_present"] is True
    assert set(result.stage_durations) >= {"connect", "tls_handshake", "protocol_handshake"}


async def test_fingerprint_accepts_dollar_lowercase_and_spaced_forms(
    tor_relay_process: TorRelayProcess,
) -> None:
    fp = tor_relay_process.fingerprint
    spaced = " ".join(fp[i : i + 4] for i in range(0, 40, 4))
    for form in (f"${fp}", fp.lower(), spaced):
        result = await run(relay_target(tor_relay_process, fingerprint=form))
        assert result.success, (form, result.to_dict())


async def test_wrong_rsa_fingerprint_is_identity_mismatch(tor_relay_process: TorRelayProcess) -> None:
    result = await run(relay_target(tor_relay_process, fingerprint="A" * 40))
    assert (result.failure, result.stage) == (Failure.TOR_IDENTITY_MISMATCH, Stage.PROTOCOL_HANDSHAKE)
    assert result.evidence is None  # another relay, or a re-keyed one: no evidence of interception


async def test_wrong_ed25519_identity_is_identity_mismatch(tor_relay_process: TorRelayProcess) -> None:
    result = await run(relay_target(tor_relay_process, ed25519_identity="B" * 43))
    assert (result.failure, result.stage) == (Failure.TOR_IDENTITY_MISMATCH, Stage.PROTOCOL_HANDSHAKE)


@contextlib.asynccontextmanager
async def tls_server(ca: trustme.CA, handler: object) -> AsyncIterator[int]:
    """A TLS server on a free loopback port with a trustme certificate; yields the port."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("relay.example").configure_cert(ctx)
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ctx)  # type: ignore[arg-type]
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def test_tls_terminating_proxy_in_front_of_the_real_relay_is_identity_mismatch(
    tor_relay_process: TorRelayProcess,
) -> None:
    """A MITM box that terminates TLS and forwards to the real relay replays genuine CERTS, but its TLS
    certificate is not the relay's link certificate."""
    tasks: list[asyncio.Task[None]] = []
    writers: list[asyncio.StreamWriter] = []

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", tor_relay_process.or_port, ssl=link_tls_context(), server_hostname="www.example.com"
        )
        writers.extend((writer, up_writer))
        tasks.append(asyncio.create_task(_pipe(reader, up_writer)))
        tasks.append(asyncio.create_task(_pipe(up_reader, writer)))

    async with tls_server(trustme.CA(), forward) as port:
        result = await run(relay_target(tor_relay_process, port=port))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers:
            writer.transport.abort()  # the relay may still be talking: no graceful TLS close needed
    assert (result.failure, result.stage) == (Failure.TOR_IDENTITY_MISMATCH, Stage.PROTOCOL_HANDSHAKE)
    assert result.facts["tor_link_version"] == 5  # the link handshake itself went through the proxy
    assert result.evidence == Technique.TLS_INTERCEPTION


async def test_tls_server_that_does_not_speak_tor_is_link_handshake_failed(ca: trustme.CA) -> None:
    async def http_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + b"x" * 600)
        await writer.drain()
        writer.close()

    async with tls_server(ca, http_answer) as port:
        result = await run({"kind": "tor_relay", "host": "127.0.0.1", "port": port, "fingerprint": "A" * 40})
    assert (result.failure, result.stage) == (Failure.TOR_LINK_HANDSHAKE_FAILED, Stage.PROTOCOL_HANDSHAKE)


async def test_absurd_cell_length_is_rejected_without_reading_it(ca: trustme.CA) -> None:
    """VERSIONS, then a CERTS header announcing 65535 bytes: refused at the header, not buffered."""

    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"\x00\x00\x07\x00\x02\x00\x05" + b"\x00\x00\x00\x00\x81\xff\xff")
        await writer.drain()
        await asyncio.sleep(3)  # keep the connection open: only the length may end the attempt
        writer.close()

    async with tls_server(ca, hostile) as port:
        result = await run(
            {"kind": "tor_relay", "host": "127.0.0.1", "port": port, "fingerprint": "A" * 40}, timeout=2
        )
    assert (result.failure, result.stage) == (Failure.TOR_LINK_HANDSHAKE_FAILED, Stage.PROTOCOL_HANDSHAKE)


async def test_endless_padding_cells_are_bounded(ca: trustme.CA) -> None:
    async def padder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"\x00\x00\x07\x00\x02\x00\x04")
        try:
            for _ in range(1000):
                writer.write(b"\x00\x00\x00\x00\x80\x00\x10" + b"p" * 16)  # VPADDING
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        writer.close()

    async with tls_server(ca, padder) as port:
        result = await run({"kind": "tor_relay", "host": "127.0.0.1", "port": port, "fingerprint": "A" * 40})
    assert (result.failure, result.stage) == (Failure.TOR_LINK_HANDSHAKE_FAILED, Stage.PROTOCOL_HANDSHAKE)


async def test_listener_that_never_answers_times_out_in_tls_handshake() -> None:
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(8)  # the kernel completes the TCP handshake; nobody ever reads the ClientHello
        port = blackhole.getsockname()[1]
        result = await run(
            {"kind": "tor_relay", "host": "127.0.0.1", "port": port, "fingerprint": "A" * 40}, timeout=1.0
        )
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.TLS_HANDSHAKE)
    assert result.duration_s < 1.5  # the deadline is hard: no graceful close waiting on a blackhole


async def test_private_relay_address_and_fingerprint_stay_out_of_facts(
    tor_relay_process: TorRelayProcess,
) -> None:
    result = await run(relay_target(tor_relay_process, private=True))
    assert result.success
    text = repr(result.to_dict())
    assert "127.0.0.1" not in text and tor_relay_process.fingerprint not in text
    model = TorRelayTarget.model_validate({"name": "p", **relay_target(tor_relay_process, private=True)})
    assert {"127.0.0.1", tor_relay_process.fingerprint} <= set(model.sensitive_values())


async def test_dirport_serves_the_relays_own_signed_descriptor(tor_relay_process: TorRelayProcess) -> None:
    target = {
        "kind": "tor_dirport",
        "host": "127.0.0.1",
        "port": tor_relay_process.dir_port,
        "fingerprint": tor_relay_process.fingerprint,
    }
    result = await run(target)
    assert result.success, result.to_dict()
    assert result.facts["http_status"] == 200

    wrong = await run({**target, "fingerprint": "C" * 40})
    assert (wrong.failure, wrong.stage) == (Failure.TOR_IDENTITY_MISMATCH, Stage.HTTP)


async def test_dirport_block_page_is_invalid_response_not_reachable() -> None:
    async def blockpage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>Access denied</html>")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(blockpage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await run({"kind": "tor_dirport", "host": "127.0.0.1", "port": port})
    finally:
        server.close()
        await server.wait_closed()
    assert (result.failure, result.stage) == (Failure.HTTP_INVALID_RESPONSE, Stage.HTTP)


@pytest.mark.parametrize(
    ("response", "failure"),
    [
        (b"HTTP/1.0 404 Not found\r\n\r\n", Failure.HTTP_UNEXPECTED_STATUS_CODE),
        (b"HTTP/1.0 200 OK\r\n\r\n" + b"router x\n" * 20000, Failure.RESPONSE_TOO_LARGE),
        (b"SSH-2.0-OpenSSH_9.2\r\n", Failure.HTTP_INVALID_RESPONSE),
    ],
    ids=["404", "endless-body", "not-http"],
)
async def test_dirport_answers_that_are_not_a_descriptor_fail_at_http(
    response: bytes, failure: Failure
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1000)
        with contextlib.suppress(ConnectionError):
            writer.write(response)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await run({"kind": "tor_dirport", "host": "127.0.0.1", "port": port})
    finally:
        server.close()
        await server.wait_closed()
    assert (result.failure, result.stage) == (failure, Stage.HTTP)
