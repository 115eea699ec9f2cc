"""The STUN probe against a real coturn (``turnserver``) on loopback, and against scripted peers for the
edge cases a hostile network produces (wrong transaction ID, silence, closed port)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from reachwatch.config.targets.stun import StunTarget
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.probes.base import ProbeContext, run_probe
from reachwatch.probes.stun import SPEC, binding_request, decode_address, is_response_to

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def coturn() -> Iterator[int]:
    port = free_udp_port()
    tmp = tempfile.mkdtemp(prefix="rw-coturn-")
    proc = subprocess.Popen(
        [TURNSERVER, "-n", "--listening-ip", "127.0.0.1", "--listening-port", str(port),
         "--no-tls", "--no-dtls", "--stun-only", "--no-cli", "--log-file", "stdout",
         "--pidfile", f"{tmp}/turn.pid", "--userdb", f"{tmp}/turndb"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)
            while True:
                assert proc.poll() is None, "turnserver exited"
                tid = b"r" * 12
                sock.sendto(binding_request(tid), ("127.0.0.1", port))
                try:
                    if is_response_to(tid, sock.recv(2048)):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "turnserver did not answer"
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


async def stun(port: int, *, private: bool = False, timeout: float = 3.0) -> ProbeResult:
    target = StunTarget(name="stun1", kind="stun", host="127.0.0.1", port=port, private=private)
    return await run_probe(SPEC, target, ProbeContext("stun1", "stun", timeout, private=private))


async def test_binding_request_to_coturn_succeeds_without_nat_and_never_records_the_mapped_address(
    coturn: int,
) -> None:
    result = await stun(coturn)
    assert result.success, result
    assert result.facts["nat"] is False  # loopback: coturn saw our socket's own address and port
    # the mapped address is the vantage's own public address: no fact may carry it, public target or not
    assert "mapped_address" not in result.facts
    assert not any(isinstance(v, str) and v.startswith("127.0.0.1:") for v in result.facts.values())


async def test_private_stun_target_keeps_the_server_address_out_of_facts(coturn: int) -> None:
    result = await stun(coturn, private=True)
    assert result.success
    assert "mapped_address" not in result.facts and "ip" not in result.facts
    assert result.facts["nat"] is False


def _success_mapping(address: bytes, port: int) -> object:
    """A Binding success whose XOR-MAPPED-ADDRESS is ``address:port`` (IPv4), as a NAT would report."""

    def reply(req: bytes) -> bytes:
        xport = (port ^ (0x2112A442 >> 16)).to_bytes(2, "big")
        xaddr = bytes(b ^ k for b, k in zip(address, (0x2112A442).to_bytes(4, "big"), strict=True))
        attr = b"\x00\x20\x00\x08\x00\x01" + xport + xaddr
        return b"\x01\x01" + len(attr).to_bytes(2, "big") + req[4:20] + attr

    return reply


async def test_mapped_address_other_than_our_socket_is_nat_and_is_not_recorded() -> None:
    transport, _ = await scripted(_success_mapping(bytes([192, 0, 2, 1]), 32853))
    try:
        result = await stun(transport.get_extra_info("sockname")[1])
    finally:
        transport.close()
    assert result.success, result
    assert result.facts["nat"] is True
    assert not any("192.0.2.1" in str(v) for v in result.facts.values())


async def test_mapped_port_zero_is_protocol_error() -> None:
    transport, _ = await scripted(_success_mapping(bytes([127, 0, 0, 1]), 0))
    try:
        result = await stun(transport.get_extra_info("sockname")[1])
    finally:
        transport.close()
    assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)


async def test_closed_udp_port_is_connection_refused() -> None:
    result = await stun(free_udp_port())
    assert (result.failure, result.stage) == (Failure.CONNECTION_REFUSED, Stage.PROTOCOL_HANDSHAKE)


class _Scripted(asyncio.DatagramProtocol):
    """Answers every request with a reply made by ``make`` (a hostile or broken server)."""

    def __init__(self, make: object) -> None:
        self.make = make
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.requests += 1
        assert self.transport is not None and callable(self.make)
        self.transport.sendto(self.make(data), addr)


async def scripted(make: object) -> tuple[asyncio.DatagramTransport, _Scripted]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _Scripted(make), local_addr=("127.0.0.1", 0)
    )
    return transport, proto


async def test_reply_with_another_transaction_id_is_ignored_and_request_retransmitted() -> None:
    transport, proto = await scripted(
        lambda req: binding_request(b"x" * 12).replace(b"\x00\x01", b"\x01\x01", 1)
    )
    try:
        result = await stun(transport.get_extra_info("sockname")[1], timeout=2.0)
    finally:
        transport.close()
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert proto.requests >= 2  # answered (wrongly) and retransmitted after the 500 ms RTO


async def test_binding_error_response_is_protocol_error() -> None:
    def error_reply(req: bytes) -> bytes:
        attr = b"\x00\x09\x00\x04\x00\x00\x04\x00"  # ERROR-CODE 400
        return b"\x01\x11" + len(attr).to_bytes(2, "big") + req[4:20] + attr

    transport, _ = await scripted(error_reply)
    try:
        result = await stun(transport.get_extra_info("sockname")[1])
    finally:
        transport.close()
    assert (result.failure, result.facts["stun_error_code"]) == (Failure.PROTOCOL_ERROR, 400)


def test_xor_mapped_address_decodes_rfc5769_vector() -> None:
    # RFC 5769 section 2.2: 192.0.2.1 port 32853, transaction id b7e7a701bc34d686fa87dfae
    tid = bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert decode_address(bytes.fromhex("0001a147e112a643"), tid, xor=True) == "192.0.2.1:32853"
