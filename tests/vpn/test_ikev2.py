"""The ikev2 probe against strongSwan's charon in a test namespace, behind the test censor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reachwatch.config.targets.ikev2 import Ikev2Target
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.formats import ike_packets as ike
from reachwatch.probes.base import run_probe
from reachwatch.probes.ikev2 import SPEC
from tests.netlab import SERVER_IP, Lab
from tests.vpn.conftest import NsProber, hostile_udp, make_ctx, start_charon, start_udp_echo

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
