"""The whole matrix of kinds that carry data (soak: ~2-3 minutes), in the same lab as
``test_usable_e2e.py`` (which keeps one representative per family in the default suite: socks5 for the
proxies, wireguard for the packet tunnels). Here every kind: socks5, http_proxy, shadowsocks,
wireguard, openvpn_tunnel, openconnect; each phase: clean, cut after N bytes, killed by age, shaped.
The Tor kinds have their own tests (tests/tor/: the data stage, a cut after N bytes, meek).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.core.censorlab import target
from tests.core.usablelab import CUT_BYTES, VOLUME, UsableLab
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.soak]

ONLINE = {"egov": ("reachable", None), "wiki": ("reachable", None)}
WAYS = ("socks", "http", "ss", "wg", "ovpn", "oc")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsableLab]:
    with Lab("mat") as lab:
        ul = UsableLab(lab, tmp_path_factory.mktemp("usablematrix"), full=True)
        try:
            ul.start()
            yield ul
        finally:
            ul.close()


def test_every_kind_is_reachable_after_moving_the_volume(matrix: UsableLab) -> None:
    matrix.set_phase("open")
    for name in ("kz", "alone"):
        status = matrix.wait_for(name, {**ONLINE, **{w: ("reachable", None) for w in WAYS}}, timeout=90)
        for way in WAYS:
            assert target(status, way)["last"]["facts"]["bytes_moved"] >= VOLUME, (name, way)


@pytest.mark.parametrize("phase", ["cut", "aged"])
def test_every_kind_cut_by_volume_or_by_age_is_flow_cut_with_the_reference_and_unreachable_without(
    matrix: UsableLab, phase: str
) -> None:
    matrix.set_phase(phase)
    status = matrix.wait_for("kz", {**ONLINE, **{w: ("blocked", "flow_cut") for w in WAYS}}, timeout=90)
    for way in WAYS:
        facts = target(status, way)["last"]["facts"]
        moved = facts["cut_after_bytes"]
        if phase == "cut":  # the handshake's own bytes count towards N too (certificates for the VPNs)
            assert 0 <= moved <= CUT_BYTES, (way, moved)
        else:  # killed 2 s after the first packet, whatever it carried
            assert facts["cut_after_s"] <= 4.0, (way, facts)
    matrix.wait_for("alone", {**ONLINE, **{w: ("unreachable", None) for w in WAYS}}, timeout=90)


def test_every_kind_on_a_shaped_path_is_throttled_with_the_reference(matrix: UsableLab) -> None:
    matrix.set_phase("shaped")
    matrix.wait_for("kz", {**ONLINE, **{w: ("blocked", "throttled") for w in WAYS}}, timeout=120)
    matrix.wait_for("alone", {**ONLINE, **{w: ("reachable", None) for w in WAYS}}, timeout=120)
