"""The openvpn_tunnel deep stage: the real openvpn client against real servers, and a cut after N bytes."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reachwatch.failures import Failure, Stage
from reachwatch.probes import openvpn_tunnel
from reachwatch.probes.base import run_probe
from tests.netlab import SERVER_IP, Lab
from tests.vpn.conftest import (
    UNPRIVILEGED_UID,
    NsProber,
    Pki,
    make_ctx,
    start_openvpn_server,
    start_tcp_echo,
    unprivileged_home,
    unprivileged_prober,
)

pytestmark = pytest.mark.slow


def write_ovpn(path: Path, pki: Pki, *, ca: Path | None = None) -> Path:
    """A user's .ovpn as found in the wild: its own remote (which the probe replaces) and inline certs."""
    path.write_text(
        "client\ndev tun\nproto tcp\nremote vpn.example.invalid 443\nremote-random\nkeepalive 10 60\n"
        f"<ca>\n{(ca or pki.ca_crt).read_text()}</ca>\n"
        f"<cert>\n{pki.client_crt.read_text()}</cert>\n<key>\n{pki.client_key.read_text()}</key>\n"
    )
    path.chmod(0o600)
    return path


def tunnel(port: int, ovpn: Path, proto: str = "udp", **kw: Any) -> openvpn_tunnel.OpenVpnTunnelTarget:
    return openvpn_tunnel.OpenVpnTunnelTarget(
        kind="openvpn_tunnel", name="tun", host="127.0.0.1", port=port, proto=proto,
        config_file=str(ovpn), **kw,
    )  # fmt: skip


@pytest.mark.parametrize("proto", ["udp", "tcp"])
async def test_real_client_reaches_initialization_and_holds(
    openvpn_server: Any, ovpn_pki: Pki, tmp_path: Path, proto: str
) -> None:
    server = openvpn_server(proto)
    ovpn = write_ovpn(tmp_path / "user.ovpn", ovpn_pki)
    result = await run_probe(
        openvpn_tunnel.SPEC, tunnel(server.port, ovpn, proto, hold=2.5), make_ctx(timeout=15)
    )
    assert result.success, (result, server.log.read_text()[-1500:])
    assert result.facts["tunnel_up"] is True
    assert result.facts["tunnel_survived_s"] >= 2.0
    assert result.facts["bytes_in"] > 0 and result.facts["bytes_out"] > 0


async def test_untrusted_server_certificate_fails_at_tls(
    openvpn_server: Any, ovpn_pki: Pki, tmp_path: Path
) -> None:
    server = openvpn_server("udp")
    ovpn = write_ovpn(tmp_path / "user.ovpn", ovpn_pki, ca=ovpn_pki.client_crt)  # the wrong trust anchor
    result = await run_probe(openvpn_tunnel.SPEC, tunnel(server.port, ovpn), make_ctx(timeout=10))
    assert (result.failure, result.stage) == (Failure.SSL_UNKNOWN_AUTHORITY, Stage.TLS_HANDSHAKE)


async def test_server_dying_during_the_hold_fails_at_stage_tunnel(
    openvpn_server: Any, ovpn_pki: Pki, tmp_path: Path
) -> None:
    server = openvpn_server("udp")
    ovpn = write_ovpn(tmp_path / "user.ovpn", ovpn_pki)
    t = tunnel(server.port, ovpn, hold=10, ping_restart=3)

    async def kill_later() -> None:
        await asyncio.sleep(3.0)  # the handshake takes about 1.5 s (PUSH_REQUEST waits 1 s)
        server.stop()

    killer = asyncio.create_task(kill_later())
    result = await run_probe(openvpn_tunnel.SPEC, t, make_ctx(timeout=15))
    await killer
    assert result.stage == Stage.TUNNEL, result
    # the dead server's host answers ICMP port unreachable, or (firewalled) nothing at all
    assert result.failure in (Failure.CONNECTION_REFUSED, Failure.GENERIC_TIMEOUT_ERROR)
    assert result.facts["tunnel_up"] is True
    assert result.facts["tunnel_survived_s"] < 9


def test_user_config_is_filtered_of_remote_scripts_and_connection_blocks() -> None:
    text = (
        "client\nremote a.example 1194\nup /bin/evil\nscript-security 3\n<connection>\nremote b 1\n"
        "</connection>\n<ca>\nremote-looking line inside a cert block\n</ca>\nverb 9\ncipher AES-256-GCM\n"
        "remote-cert-tls server\nmanagement-hold\n"
    )
    out = openvpn_tunnel.filtered_config(text)
    assert "a.example" not in out and "/bin/evil" not in out and "remote b" not in out
    assert "remote-looking line inside a cert block" in out  # inline blocks are copied verbatim
    assert "cipher AES-256-GCM" in out and "verb 9" not in out and "management-hold" not in out
    assert "remote-cert-tls server" in out  # a server-certificate check must survive the filter


@pytest.mark.root
async def test_censor_cutting_the_flow_after_n_packets_is_seen_at_stage_tunnel(
    lab: Lab, prober: NsProber, ovpn_pki: Pki, tmp_path: Path
) -> None:
    server = start_openvpn_server(
        ovpn_pki, tmp_path, "udp", [], netns=lab.server.name, local=SERVER_IP, port=1194
    )
    try:
        ovpn = write_ovpn(tmp_path / "user.ovpn", ovpn_pki)
        t = {"name": "tun", "host": SERVER_IP, "port": 1194, "config_file": str(ovpn), "ping_restart": 4}
        # learn how many bytes each way a short session takes on this path
        lab.censor("udp dport 1194 counter\nudp sport 1194 counter")
        short = prober.probe("openvpn_tunnel", {**t, "hold": 0.5}, timeout=10)
        assert short.success, short
        listed = lab.router.run("nft list chain inet censor forward").stdout
        up, down = (int(part.split()[0]) for part in listed.split("bytes ")[1:3])
        # TSPU-style cut, both directions: a flow may carry about that much and a few keepalives more
        lab.censor(
            f"udp dport 1194 quota over {up + 150} bytes drop\n"
            f"udp sport 1194 quota over {down + 150} bytes drop"
        )
        cut = prober.probe("openvpn_tunnel", {**t, "hold": 12}, timeout=18)
        assert cut.facts.get("tunnel_up") is True, cut
        assert (cut.failure, cut.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.TUNNEL), cut
    finally:
        server.stop()


# -- the data stage: a real tun device in the client's own user+network namespace ----------------------

OVPN_GATEWAY = "10.231.0.1"  # the multi-client server's own tunnel address (start_openvpn_server multi)
CANARY_PORT = 7007


@pytest.fixture
def tun_lab(lab: Lab, ovpn_pki: Pki, tmp_path: Path) -> Iterator[tuple[Lab, Path]]:
    """openvpn --server with a tun device in the server ns, and an echo canary on all its addresses."""
    server = start_openvpn_server(
        ovpn_pki, tmp_path, "udp", [], netns=lab.server.name, local=SERVER_IP, port=1194, multi=True
    )
    start_tcp_echo(lab, "0.0.0.0", CANARY_PORT)
    try:
        yield lab, write_ovpn(tmp_path / "user.ovpn", ovpn_pki)
    finally:
        server.stop()


def data_target(ovpn: Path, lifetime: str = "1s", volume: str = "64KiB") -> dict[str, Any]:
    return {
        "name": "tun", "host": SERVER_IP, "port": 1194, "config_file": str(ovpn),
        "canary": {"host": OVPN_GATEWAY, "port": CANARY_PORT},
        "data_stage": {"volume": volume, "min_lifetime": lifetime, "stall_timeout": "2s"},
    }  # fmt: skip


@pytest.mark.root
def test_data_stage_goes_through_a_real_tun_from_a_user_without_any_capability(
    tun_lab: tuple[Lab, Path], ovpn_pki: Pki
) -> None:
    lab, _ = tun_lab
    home = unprivileged_home()
    try:
        ovpn = write_ovpn(home / "user.ovpn", ovpn_pki)
        os.chown(ovpn, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
        prober = unprivileged_prober(lab, home)
        try:
            result = prober.probe("openvpn_tunnel", data_target(ovpn), timeout=20)
            # ip netns exec, unshare, sh and setpriv all exec: the pid is the worker's own
            worker = Path(f"/proc/{prober.proc.pid}/status").read_text()
        finally:
            prober.close()
    finally:
        shutil.rmtree(home)
    # the worker that ran the probe: not root, no capability, none to gain
    assert f"Uid:\t{UNPRIVILEGED_UID}" in worker and "CapEff:\t0000000000000000" in worker, worker
    assert "CapBnd:\t0000000000000000" in worker and "NoNewPrivs:\t1" in worker, worker
    assert result.success, result
    facts = result.facts
    assert facts["tunnel_up"] is True
    assert facts["bytes_moved"] == 64 * 1024 + 256 and facts["transfer_goal_bytes"] == 64 * 1024
    assert isinstance(facts["throughput_bps"], float) and facts["throughput_bps"] > 0
    assert isinstance(facts["bytes_in"], int) and facts["bytes_in"] > 64 * 1024  # counted by openvpn itself
    # nothing left behind: no client, no namespace helper
    # (this test's user only: another test running beside it under -n may have a helper of its own)
    leftover = ["pgrep", "-u", str(UNPRIVILEGED_UID), "-f", "netns_helper"]
    assert lab.client.run(leftover, check=False).stdout == ""


@pytest.mark.root
def test_data_stage_cut_after_n_bytes_fails_at_transfer_near_n(
    tun_lab: tuple[Lab, Path], prober: NsProber
) -> None:
    lab, ovpn = tun_lab
    first = prober.probe("openvpn_tunnel", data_target(ovpn, lifetime="0s"), timeout=20)
    assert first.success, first
    # learn what the handshake costs on this path, then let the flow carry that and 20 KB more
    lab.censor("udp sport 1194 counter")
    prober.probe("openvpn_tunnel", data_target(ovpn, lifetime="0s", volume="0"), timeout=20)
    handshake = int(lab.router.run("nft list chain inet censor forward").stdout.split("bytes ")[1].split()[0])
    limit = handshake + 20_000
    lab.censor(f"udp sport 1194 ct reply bytes > {limit} drop")
    cut = prober.probe("openvpn_tunnel", data_target(ovpn, lifetime="0s"), timeout=20)
    assert (cut.failure, cut.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER), cut
    moved = cut.facts["cut_after_bytes"]
    # echoed payload rides TCP inside the tunnel: 20 KB of wire bytes carry a bit less than 20 KB of payload
    # (per packet ~80 bytes of headers and tunnel overhead, and the canary line before the stage)
    assert isinstance(moved, int) and 20_000 * 0.8 <= moved <= 20_000, moved
