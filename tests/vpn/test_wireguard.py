"""The wireguard probe against wireguard-go in a test namespace, behind the test censor."""

from __future__ import annotations

import base64
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from reachwatch.config.targets.wireguard import WireGuardTarget
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.formats import noise
from reachwatch.probes import wireguard
from reachwatch.probes.base import ProbeContext, Services, run_probe
from reachwatch.probes.wireguard import SPEC
from tests.netlab import SERVER_IP, Lab
from tests.vpn.conftest import (
    PYTHON,
    REPO,
    WG_PEER_INSIDE,
    WG_SERVER_INSIDE,
    NsProber,
    WgServer,
    free_port,
    hostile_udp,
    make_ctx,
    start_udp_echo,
    start_wireguard,
)

pytestmark = [pytest.mark.root, pytest.mark.slow]


def wg_target(server: WgServer, **kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "wg",
        "host": SERVER_IP,
        "port": server.port,
        "public_key": server.public_key,
        "private_key_file": str(server.client_key_file),
        "retransmit": "1s",
    }
    if server.psk_file:
        fields["preshared_key_file"] = str(server.psk_file)
    return {**fields, **kw}


async def test_real_handshake_completes_and_is_repeatable(lab: Lab, tmp_path: Path, prober: NsProber) -> None:
    server = start_wireguard(lab, tmp_path)
    first = prober.probe("wireguard", wg_target(server))
    assert first.success, first
    assert first.facts["handshake"] is True
    # a second attempt right after needs a strictly later TAI64N timestamp: proves the bookkeeping
    second = prober.probe("wireguard", wg_target(server))
    assert second.success, second
    endpoint = lab.server.run(["wg", "show", f"wg{lab.suffix}"[:15], "endpoints"]).stdout
    assert "198.18.0.2:" in endpoint  # the server roamed our peer to the probe: why the peer is dedicated


async def test_preshared_key_is_required_and_used(lab: Lab, tmp_path: Path, prober: NsProber) -> None:
    server = start_wireguard(lab, tmp_path, psk=True)
    ok = prober.probe("wireguard", wg_target(server))
    assert ok.success, ok
    # without the PSK the server's response does not authenticate for us: never a success
    no_psk = {k: v for k, v in wg_target(server, name="wg-nopsk").items() if k != "preshared_key_file"}
    bad = prober.probe("wireguard", no_psk, timeout=2.0)
    assert not bad.success
    assert bad.failure in (Failure.PROTOCOL_ERROR, Failure.GENERIC_TIMEOUT_ERROR)
    assert bad.evidence is None


async def test_unregistered_key_is_silence_not_blocking(lab: Lab, tmp_path: Path, prober: NsProber) -> None:
    server = start_wireguard(lab, tmp_path)
    start_udp_echo(lab, SERVER_IP, 7)
    other = tmp_path / "stranger.key"
    other.write_text(base64.b64encode(noise.raw_private(X25519PrivateKey.generate())).decode())
    other.chmod(0o600)
    control = {"host": SERVER_IP, "port": 7}
    result = prober.probe(
        "wireguard", wg_target(server, private_key_file=str(other), control=control), timeout=2.0
    )
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert result.facts["control_answered"] is True
    assert result.evidence is None  # never answered: a wrong key, not a censor


async def test_censor_dropping_initiations_is_protocol_blocking_while_control_works(
    lab: Lab, tmp_path: Path, prober: NsProber
) -> None:
    server = start_wireguard(lab, tmp_path)
    start_udp_echo(lab, SERVER_IP, 7)
    target = wg_target(server, control={"host": SERVER_IP, "port": 7})
    assert prober.probe("wireguard", target).success
    lab.censor("udp length 156 drop")  # 8-byte UDP header + 148-byte handshake initiation
    blocked = prober.probe("wireguard", target, timeout=2.0)
    assert (blocked.failure, blocked.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert blocked.facts["control_answered"] is True
    assert blocked.evidence == Technique.PROTOCOL_BLOCKING


async def test_whole_path_blackholed_is_not_protocol_blocking(
    lab: Lab, tmp_path: Path, prober: NsProber
) -> None:
    server = start_wireguard(lab, tmp_path)
    start_udp_echo(lab, SERVER_IP, 7)
    target = wg_target(server, control={"host": SERVER_IP, "port": 7})
    assert prober.probe("wireguard", target).success
    lab.censor(f"ip daddr {SERVER_IP} drop")
    result = prober.probe("wireguard", target, timeout=2.0)
    assert result.failure == Failure.GENERIC_TIMEOUT_ERROR
    assert result.facts["control_answered"] is False
    assert result.evidence is None


def with_data(server: WgServer, volume: str = "64KiB", lifetime: str = "2s", **kw: Any) -> dict[str, Any]:
    stage = {"volume": volume, "min_lifetime": lifetime, "stall_timeout": "1s"}
    return wg_target(
        server, tunnel_address=WG_PEER_INSIDE, ping_address=WG_SERVER_INSIDE, data_stage=stage, **kw
    )


async def test_data_stage_carries_echoes_through_the_tunnel_for_the_volume_and_the_lifetime(
    lab: Lab, tmp_path: Path, prober: NsProber
) -> None:
    server = start_wireguard(lab, tmp_path)
    result = prober.probe("wireguard", with_data(server), timeout=8.0)
    assert result.success, result
    facts = result.facts
    # the volume (64 KiB in 1200-byte echoes), then one 256-byte echo a second until 2 s
    assert facts["bytes_moved"] == 64 * 1024 + 2 * 256
    assert facts["transfer_goal_bytes"] == 64 * 1024
    assert isinstance(facts["flow_alive_s"], float) and facts["flow_alive_s"] >= 2.0
    assert isinstance(facts["throughput_bps"], float) and facts["throughput_bps"] > 0
    # the server's own counters saw our data arrive through the tunnel, decrypted
    transfer = lab.server.run(["wg", "show", f"wg{lab.suffix}"[:15], "transfer"]).stdout.split()
    assert int(transfer[1]) > 64 * 1024


async def test_a_flow_cut_after_n_bytes_fails_at_transfer_with_the_cut_point_near_n(
    lab: Lab, tmp_path: Path, prober: NsProber
) -> None:
    server = start_wireguard(lab, tmp_path)
    limit = 30_000  # bytes from the server (IP headers and all) before the censor drops the flow
    lab.censor(f"udp sport {server.port} ct reply bytes > {limit} drop")
    result = prober.probe("wireguard", with_data(server, lifetime="0s"), timeout=6.0)
    assert (result.failure, result.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER), result
    assert result.facts["handshake"] is True
    cut = result.facts["cut_after_bytes"]
    assert isinstance(cut, int) and cut == result.facts["bytes_moved"]
    # each 1200-byte echo costs 1288 bytes on the wire (outer IP+UDP, WireGuard's 32, inner IP+ICMP), and
    # the 92-byte handshake response went first: the cut lies within one packet of what the limit allows
    allowed = (limit - 120) * 1200 / 1288
    assert allowed - 1200 <= cut <= allowed, cut


async def test_a_flow_killed_by_age_is_cut_at_that_age(lab: Lab, tmp_path: Path, prober: NsProber) -> None:
    server = start_wireguard(lab, tmp_path)
    lab.kill_flows_after(2.0, f"udp dport {server.port}")
    result = prober.probe("wireguard", with_data(server, volume="16KiB", lifetime="5s"), timeout=9.0)
    assert (result.failure, result.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER), result
    assert result.facts["bytes_moved"] >= 16 * 1024  # the volume went through; the flow's age killed it
    cut_s = result.facts["cut_after_s"]
    # killed at 2 s after the flow's first packet, seen at the next echo and its 1 s stall timeout
    assert isinstance(cut_s, float) and 1.5 <= cut_s <= 4.5, cut_s


def test_model_needs_both_tunnel_addresses_and_ipv4() -> None:
    base = {"kind": "wireguard", "name": "w", "host": "h", "private_key_file": "k",
            "public_key": base64.b64encode(bytes(32)).decode()}  # fmt: skip
    with pytest.raises(ValueError, match="together"):
        WireGuardTarget.model_validate({**base, "tunnel_address": "10.0.0.2"})
    with pytest.raises(ValueError, match="IPv4"):
        WireGuardTarget.model_validate({**base, "tunnel_address": "fd00::2", "ping_address": "fd00::1"})
    ok = WireGuardTarget.model_validate({**base, "tunnel_address": "10.0.0.2/32", "ping_address": "10.0.0.1"})
    assert ok.tunnel_address == "10.0.0.2" and ok.data_stage_on()


def test_model_rejects_a_bad_public_key() -> None:
    with pytest.raises(ValueError, match="public_key"):
        WireGuardTarget(kind="wireguard", name="w", host="h", public_key="abc", private_key_file="k")


FLOOD = """
import os, socket, sys, time
from reachwatch.formats import noise
server = bytes.fromhex(sys.argv[3])
key = noise.hash_(noise.LABEL_MAC1, server)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], int(sys.argv[2])))
end = time.monotonic() + float(sys.argv[4])
while time.monotonic() < end:
    body = b"\\x01\\x00\\x00\\x00" + os.urandom(112)
    try:
        s.send(body + noise.mac(key, body) + bytes(16))  # valid MAC1: queued for the costly checks
    except OSError:
        pass
"""


async def test_cookie_reply_under_load_is_answered_with_mac2(
    lab: Lab, tmp_path: Path, prober: NsProber
) -> None:
    """Flood the responder with MAC1-valid initiations until wireguard-go is "under load"; it then answers
    our initiation with a cookie reply, and the probe completes the handshake with MAC2 set."""
    server = start_wireguard(lab, tmp_path)
    server_hex = base64.b64decode(server.public_key).hex()
    flood = [str(PYTHON), "-c", FLOOD, SERVER_IP, str(server.port), server_hex, "6"]
    flooders = [lab.client.popen(flood, env={**os.environ, "PYTHONPATH": str(REPO)}) for _ in range(2)]
    time.sleep(1.0)
    result = prober.probe("wireguard", wg_target(server, retransmit="300ms"), timeout=4.0)
    for proc in flooders:
        proc.wait(timeout=15)
    assert result.success, result
    assert result.facts.get("cookie_reply") is True, result


async def test_junk_responses_are_a_protocol_error_not_a_handshake(tmp_path: Path) -> None:
    key = tmp_path / "probe.key"
    key.write_text(base64.b64encode(noise.raw_private(X25519PrivateKey.generate())).decode())
    key.chmod(0o600)
    server_pub = base64.b64encode(noise.raw_public(X25519PrivateKey.generate())).decode()

    def junk(data: bytes) -> list[bytes]:  # right type and size, our index, random contents
        return [b"\x02\x00\x00\x00" + os.urandom(4) + data[4:8] + os.urandom(80)]

    async with hostile_udp(junk) as port:
        t = WireGuardTarget(
            kind="wireguard", name="j", host="127.0.0.1", port=port, public_key=server_pub,
            private_key_file=str(key),
        )  # fmt: skip
        result = await run_probe(SPEC, t, make_ctx(timeout=1.5))
    assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)


async def test_initiations_of_one_run_carry_strictly_later_timestamps_when_the_clock_stands_still(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe takes every initiation's timestamp from the run's ``Services`` (a responder drops a
    timestamp not later than the last it accepted); another run starts from the clock."""
    key = tmp_path / "probe.key"
    private = X25519PrivateKey.generate()
    key.write_text(base64.b64encode(noise.raw_private(private)).decode())
    key.chmod(0o600)
    server = noise.raw_public(X25519PrivateKey.generate())
    still = noise.tai64n(1_700_000_000.0)
    monkeypatch.setattr(noise, "tai64n", lambda now=None: still)
    stamps: list[bytes] = []
    real_build = noise.build_initiation

    def recording(static: X25519PrivateKey, peer: bytes, timestamp: bytes, **kw: Any) -> noise.Initiation:
        stamps.append(timestamp)
        return real_build(static, peer, timestamp, **kw)

    monkeypatch.setattr(noise, "build_initiation", recording)
    services = Services()
    async with hostile_udp(lambda data: []) as port:  # silent: every attempt retransmits until its deadline
        t = WireGuardTarget(
            kind="wireguard", name="s", host="127.0.0.1", port=port, retransmit="200ms",
            public_key=base64.b64encode(server).decode(), private_key_file=str(key),
        )  # fmt: skip
        for _ in range(2):
            ctx = ProbeContext(target="s", kind="wireguard", timeout=0.5, services=services)
            await run_probe(SPEC, t, ctx)
    secs, nanos = struct.unpack(">QI", still)
    assert len(stamps) >= 2  # at least one initiation per attempt (retransmits when the machine allows)
    assert stamps == [struct.pack(">QI", secs, nanos + i) for i in range(len(stamps))]
    ours = noise.raw_public(private)
    assert services.wireguard_timestamps.next(server, ours) == struct.pack(">QI", secs, nanos + len(stamps))
    assert Services().wireguard_timestamps.next(server, ours) == still


async def test_key_files_are_read_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both key files are read at every attempt; a slow disk must not stall every other probe's loop."""
    key, psk = tmp_path / "probe.key", tmp_path / "psk"
    key.write_text(base64.b64encode(noise.raw_private(X25519PrivateKey.generate())).decode())
    psk.write_text(base64.b64encode(os.urandom(32)).decode())
    for path in (key, psk):
        path.chmod(0o600)
    readers: list[int] = []
    real = wireguard.read_secret_file

    def recording(*args: Any, **kwargs: Any) -> bytes:
        readers.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(wireguard, "read_secret_file", recording)
    server_pub = base64.b64encode(noise.raw_public(X25519PrivateKey.generate())).decode()
    t = WireGuardTarget(
        kind="wireguard", name="k", host="127.0.0.1", port=free_port(), public_key=server_pub,
        private_key_file=str(key), preshared_key_file=str(psk),
    )  # fmt: skip
    result = await run_probe(SPEC, t, make_ctx(timeout=1.0))
    assert not result.success
    assert len(readers) == 2 and threading.get_ident() not in readers
