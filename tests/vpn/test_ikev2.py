"""The ikev2 probe against strongSwan's charon in a test namespace, behind the test censor."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reachwatch.config.targets.ikev2 import Ikev2Target
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.formats import ike_packets as ike
from reachwatch.probes.base import run_probe
from reachwatch.probes.ikev2 import SPEC
from tests.netlab import SERVER_IP, Lab
from tests.vpn.conftest import (
    CHARON_INSIDE,
    NsProber,
    hostile_udp,
    make_ctx,
    start_charon,
    start_udp_echo,
)

pytestmark = [pytest.mark.root, pytest.mark.slow]


def ike_target(**kw: Any) -> dict[str, Any]:
    return {"name": "ike", "host": SERVER_IP, "retransmit": "1s", **kw}


@pytest.mark.parametrize("port", [500, 4500])
async def test_sa_init_answered_on_500_and_4500_with_nat_t_marker(
    lab: Lab, prober: NsProber, tmp_path: Path, port: int
) -> None:
    start_charon(lab, tmp_path)
    result = prober.probe("ikev2", ike_target(port=port, dh_group=14))
    assert result.success, result
    assert result.facts["ike_response"] == "sa"
    assert result.facts["dh_group"] == 14
    assert result.facts["nat_t"] is (port == 4500)


async def test_invalid_ke_is_followed_with_the_requested_group(
    lab: Lab, prober: NsProber, tmp_path: Path
) -> None:
    start_charon(lab, tmp_path)  # MODP-2048 only; we lead with ECP-256
    result = prober.probe("ikev2", ike_target(dh_group=19))
    assert result.success, result
    assert result.facts["requested_dh_group"] == 14
    assert result.facts["ike_response"] == "sa"


async def test_no_proposal_chosen_still_proves_a_live_responder(
    lab: Lab, prober: NsProber, tmp_path: Path
) -> None:
    start_charon(lab, tmp_path, proposals="aes128-sha1-modp3072")
    result = prober.probe("ikev2", ike_target(dh_group=14))
    assert result.success, result
    assert result.facts["ike_response"] == "no_proposal_chosen"
    assert result.facts["ike_notify"] == ike.NO_PROPOSAL_CHOSEN


async def test_cookie_challenge_is_answered_once(lab: Lab, prober: NsProber, tmp_path: Path) -> None:
    start_charon(lab, tmp_path, cookie_threshold=1)
    first = prober.probe("ikev2", ike_target(dh_group=14))  # leaves a half-open IKE_SA behind
    assert first.success, first
    second = prober.probe("ikev2", ike_target(dh_group=14))
    assert second.success, second
    assert second.facts["cookie"] is True
    assert second.facts["ike_response"] == "sa"


async def test_censor_dropping_sa_init_is_protocol_blocking_while_control_works(
    lab: Lab, prober: NsProber, tmp_path: Path
) -> None:
    start_charon(lab, tmp_path)
    start_udp_echo(lab, SERVER_IP, 7)
    target = ike_target(dh_group=14, control={"host": SERVER_IP, "port": 7})
    assert prober.probe("ikev2", target).success
    # IKE header byte 18 is the exchange type; 34 = IKE_SA_INIT (UDP payload offset 18 -> bit 64 + 144)
    lab.censor("udp dport 500 @th,208,8 34 drop")
    blocked = prober.probe("ikev2", target, timeout=2.0)
    assert (blocked.failure, blocked.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert blocked.facts["control_answered"] is True
    assert blocked.evidence == Technique.PROTOCOL_BLOCKING
    # an endpoint never seen answering (here: another proposal, so another target identity) gets no
    # evidence from the same silence; "answered before" is about the endpoint, not the target's name
    fresh = prober.probe("ikev2", {**target, "name": "ike-new", "dh_group": 19}, timeout=2.0)
    assert fresh.failure == Failure.GENERIC_TIMEOUT_ERROR
    assert fresh.evidence is None


async def test_no_responder_is_refused_not_blocked(lab: Lab, prober: NsProber) -> None:
    result = prober.probe("ikev2", ike_target(), timeout=2.0)
    assert (result.failure, result.stage) == (Failure.CONNECTION_REFUSED, Stage.PROTOCOL_HANDSHAKE)
    assert result.evidence is None


def with_psk(
    tmp_path: Path, secret: str = "test-only-secret", volume: str = "64KiB", lifetime: str = "2s", **kw: Any
) -> dict[str, Any]:
    psk = tmp_path / f"psk-{len(list(tmp_path.iterdir()))}"
    psk.write_text(secret + "\n")
    psk.chmod(0o600)
    stage = {"volume": volume, "min_lifetime": lifetime, "stall_timeout": "1s"}
    return ike_target(dh_group=14, psk_file=str(psk), ping_address=CHARON_INSIDE, data_stage=stage, **kw)


def charon_sas(lab: Lab, d: Path) -> str:
    uri = f"unix://{d}/charon.vici"
    return lab.server.run(["swanctl", "--list-sas", "--raw", "--uri", uri]).stdout


async def test_psk_login_carries_the_data_stage_through_esp_and_leaves_no_session(
    lab: Lab, prober: NsProber, tmp_path: Path
) -> None:
    d = start_charon(lab, tmp_path)
    result = prober.probe("ikev2", with_psk(tmp_path), timeout=8.0)
    assert result.success, result
    facts = result.facts
    assert (facts["ike_auth"], facts["child_sa"], facts["inside_address_assigned"]) == ("ok", True, True)
    assert facts["ping_inside_tsr"] is True
    # the volume (64 KiB in 1200-byte echoes), then one 256-byte echo a second until 2 s: each came back
    # with the random payload we sent, which only charon's kernel decrypting our ESP could answer
    assert facts["bytes_moved"] == 64 * 1024 + 2 * 256
    assert isinstance(facts["flow_alive_s"], float) and facts["flow_alive_s"] >= 2.0
    assert isinstance(facts["throughput_bps"], float) and facts["throughput_bps"] > 0
    log = (d / "charon.log").read_text()
    assert "CHILD_SA inside{1} established" in log
    # our Delete ended the IKE SA on the responder: a scarce endpoint keeps no half-dead sessions
    deadline = time.monotonic() + 3
    while "probe" in charon_sas(lab, d) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "probe" not in charon_sas(lab, d)


async def test_wrong_psk_is_an_auth_failure_at_the_handshake(
    lab: Lab, prober: NsProber, tmp_path: Path
) -> None:
    start_charon(lab, tmp_path)
    result = prober.probe("ikev2", with_psk(tmp_path, secret="not-the-secret"), timeout=4.0)
    assert (result.failure, result.stage) == (Failure.AUTH_FAILED, Stage.PROTOCOL_HANDSHAKE), result
    assert result.facts["ike_auth"] == "refused"
    assert result.facts["ike_notify"] == 24  # AUTHENTICATION_FAILED
    assert "bytes_moved" not in result.facts


async def test_a_censor_cutting_udp_4500_after_n_bytes_is_a_cut_at_transfer_near_n(
    lab: Lab, prober: NsProber, tmp_path: Path
) -> None:
    start_charon(lab, tmp_path)
    limit = 30_000  # bytes from the server on the UDP 4500 flow (IKE_AUTH answer, then ESP) before the drop
    lab.censor(f"udp sport 4500 ct reply bytes > {limit} drop")
    result = prober.probe("ikev2", with_psk(tmp_path, lifetime="0s"), timeout=6.0)
    assert (result.failure, result.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER), result
    assert result.facts["child_sa"] is True
    cut = result.facts["cut_after_bytes"]
    assert isinstance(cut, int) and cut == result.facts["bytes_moved"]
    # each 1200-byte echo reply costs 1300 bytes on the wire (outer IP+UDP 28, ESP header and IV 24, inner
    # IP+ICMP 1228 padded to 1232, ICV 16), after IKE_AUTH's answer (a few hundred bytes): the cut lies
    # within one packet of what the limit allows
    allowed = limit * 1200 / 1300
    assert allowed - 600 - 1200 <= cut <= allowed, cut


def test_credentials_and_ping_address_go_together() -> None:
    base = {"kind": "ikev2", "name": "i", "host": "192.0.2.1"}
    with pytest.raises(ValidationError, match="together"):
        Ikev2Target.model_validate({**base, "psk_file": "/p"})
    with pytest.raises(ValidationError, match="together"):
        Ikev2Target.model_validate({**base, "ping_address": "10.0.0.1"})
    with pytest.raises(ValidationError, match="not both"):
        Ikev2Target.model_validate({**base, "psk_file": "/p", "psk_env": "X", "ping_address": "10.0.0.1"})
    with pytest.raises(ValidationError, match="IPv4"):
        Ikev2Target.model_validate({**base, "psk_file": "/p", "ping_address": "fd00::1"})
    assert Ikev2Target.model_validate({**base, "psk_env": "X", "ping_address": "10.0.0.1"}).data_stage_on()
    assert not Ikev2Target.model_validate(base).data_stage_on()


def test_garbage_and_foreign_spi_are_not_responses() -> None:
    spi = b"\x01" * 8
    request = ike.build_sa_init(spi, ike.MODP_2048, local=("198.18.0.2", 500), remote=("198.18.1.2", 500))
    assert ike.parse_sa_init_response(request, spi) is None  # our own request is not a response
    assert ike.parse_sa_init_response(b"\x00" * 40, spi) is None
    assert ike.parse_sa_init_response(request[:27], spi) is None


@pytest.mark.parametrize("port", [500, 4500])
async def test_a_reflector_echoing_our_request_is_not_a_responder(port: int, tmp_path: Path) -> None:
    """An echo (or a middlebox reflecting packets) returns our own IKE_SA_INIT: never a live server."""
    async with hostile_udp(lambda data: [data]) as udp_port:
        t = Ikev2Target(kind="ikev2", name="r", host="127.0.0.1", port=udp_port, nat_t=port == 4500)
        result = await run_probe(SPEC, t, make_ctx(timeout=1.5))
    assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
