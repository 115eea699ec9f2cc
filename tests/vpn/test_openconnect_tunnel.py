"""OpenConnect usable: the real ocserv in a test namespace (it makes a tun device, so never on the host),
the probe logs in with a dedicated account, opens the CSTP tunnel and carries the data stage as ICMP
echoes to the server's tunnel address; then a censor that cuts the tunnel's TLS flow after N bytes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from reachwatch.config.targets.openconnect import OpenConnectTarget
from reachwatch.failures import Failure, Stage
from tests.netlab import SERVER_IP, Lab
from tests.vpn.conftest import OCSERV_GATEWAY, NsProber, ocserv_config, wait_tcp_listen

pytestmark = [pytest.mark.root, pytest.mark.slow]

GATEWAY = OCSERV_GATEWAY


@pytest.fixture
def ocserv_lab(lab: Lab, tmp_path: Path) -> Iterator[tuple[Lab, Path, Path]]:
    """ocserv on 198.18.1.2:443 in the server ns; (lab, CA file, the probe account's password file)."""
    ca = trustme.CA()
    issued = ca.issue_cert(SERVER_IP)
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    conf = ocserv_config(tmp_path, SERVER_IP, 443, cert, key)
    lab.server.popen(["ocserv", "-f", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_tcp_listen(lab.server, 443)
    password = tmp_path / "probe.pass"
    password.write_text("pw\n")
    password.chmod(0o600)
    yield lab, ca_file, password


def oc_target(ca_file: Path, password: Path, volume: str = "64KiB", lifetime: str = "1s") -> dict[str, Any]:
    return {
        "name": "oc", "host": SERVER_IP, "ca_file": str(ca_file), "username": "probe",
        "password_file": str(password), "ping_address": GATEWAY,
        "data_stage": {"volume": volume, "min_lifetime": lifetime, "stall_timeout": "1500ms"},
    }  # fmt: skip


def test_login_then_the_cstp_tunnel_carries_the_data_stage(
    ocserv_lab: tuple[Lab, Path, Path], prober: NsProber
) -> None:
    _, ca_file, password = ocserv_lab
    result = prober.probe("openconnect", oc_target(ca_file, password), timeout=10)
    assert result.success, result
    facts = result.facts
    assert facts["login"] == "ok" and facts["tunnel_up"] is True
    assert facts["bytes_moved"] == 64 * 1024 + 256 and facts["transfer_goal_bytes"] == 64 * 1024
    assert {"tunnel", "transfer"} <= set(result.stage_durations)


def test_a_cut_of_the_tunnels_tls_flow_after_n_bytes_is_a_cut_at_transfer_near_n(
    ocserv_lab: tuple[Lab, Path, Path], prober: NsProber
) -> None:
    lab, ca_file, password = ocserv_lab
    limit = 30_000  # per TCP flow: the login's own connection stays far below it
    lab.censor(f"tcp sport 443 ct reply bytes > {limit} drop")
    cut = prober.probe("openconnect", oc_target(ca_file, password, lifetime="0s"), timeout=10)
    assert (cut.failure, cut.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER), cut
    moved = cut.facts["cut_after_bytes"]
    # the server's bytes on the wire: its TLS handshake and CONNECT answer (~1.5 kB here), then per echo
    # 1200 bytes of payload in 1200 + 8 (CSTP) + 28 (IP, ICMP) + TLS and TCP/IP headers
    assert isinstance(moved, int) and limit * 0.8 <= moved <= limit, moved


def test_ping_address_needs_a_login() -> None:
    with pytest.raises(ValueError, match="needs a login"):
        OpenConnectTarget.model_validate(
            {"kind": "openconnect", "name": "o", "host": "h", "ping_address": "192.168.99.1"}
        )
