"""End to end: reachable means usable. A censor that lets handshakes through and cuts or shapes what
follows, real ways out abroad (microsocks + echo canary, wireguard-go), the real daemon in the country
with a real reference vantage abroad, and the same daemon without one (``tests/core/usablelab.py``).

Proves, per family (a proxy and a packet tunnel): the clean path is ``reachable`` with the volume moved; a
flow cut after N bytes is ``blocked``/``flow_cut`` with the cut point near N when the reference moved the
data, and ``unreachable`` without a reference; a shaped path is ``blocked``/``throttled`` with both
throughputs in the evidence; a dead server stays ``unreachable`` with a reference too; the cut points
land in ``reachwatch_probe_transfer_bytes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.core.censorlab import target
from tests.core.usablelab import CUT_BYTES, VOLUME, UsableLab
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

ONLINE = {"egov": ("reachable", None), "wiki": ("reachable", None)}


@pytest.fixture(scope="module")
def usable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsableLab]:
    with Lab("use") as lab:
        ul = UsableLab(lab, tmp_path_factory.mktemp("usablelab"))
        try:
            ul.start()
            yield ul
        finally:
            ul.close()


def last(status: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = target(status, name)["last"]
    return found


def test_clean_paths_are_reachable_after_moving_the_volume_and_a_dead_proxy_is_not(usable: UsableLab) -> None:
    usable.set_phase("open")
    expected = {"socks": ("reachable", None), "wg": ("reachable", None), "socks-dead": ("unreachable", None)}
    for name in ("kz", "alone"):
        status = usable.wait_for(name, {**ONLINE, **expected})
        for way in ("socks", "wg"):
            assert last(status, way)["facts"]["bytes_moved"] >= VOLUME, (name, way)


def test_a_flow_cut_after_n_bytes_is_flow_cut_with_the_reference_and_unreachable_without(
    usable: UsableLab,
) -> None:
    usable.set_phase("cut")
    flow_cut = ("blocked", "flow_cut")
    cut = {"socks": flow_cut, "wg": flow_cut, "socks-dead": ("unreachable", None)}
    status = usable.wait_for("kz", {**ONLINE, **cut})
    for way in ("socks", "wg"):
        attempt = last(status, way)
        assert (attempt["failure"], attempt["stage"]) == ("transfer_incomplete", "transfer"), attempt
        moved = attempt["facts"]["cut_after_bytes"]
        # within one packet window of N: the censor counts the server's bytes with every header (TCP/IP,
        # WireGuard's 32 and the inner IP/ICMP), and the handshake and the canary's greeting went first
        assert CUT_BYTES * 0.75 <= moved <= CUT_BYTES, (way, moved)
        assert attempt["facts"]["transfer_goal_bytes"] == VOLUME
    reference = usable.status("reference")
    assert reference is not None and last(reference, "socks")["success"] is True
    alone = usable.wait_for("alone", {**ONLINE, "socks": ("unreachable", None), "wg": ("unreachable", None)})
    assert last(alone, "socks")["facts"]["cut_after_bytes"] > 0
    histogram = [
        line
        for line in usable.metrics().splitlines()
        if line.startswith("reachwatch_probe_transfer_bytes_bucket") and 'le="32768.0"' in line
    ]
    counts = {
        ("socks5" if "socks5" in line else "wireguard"): float(line.rsplit(" ", 1)[1]) for line in histogram
    }
    assert counts.get("socks5", 0) >= 1 and counts.get("wireguard", 0) >= 1, histogram


def test_a_shaped_path_is_throttled_with_the_reference_and_reachable_without(usable: UsableLab) -> None:
    usable.set_phase("shaped")
    throttled = ("blocked", "throttled")
    status = usable.wait_for("kz", {**ONLINE, "socks": throttled, "wg": throttled})
    for way in ("socks", "wg"):
        facts = last(status, way)["facts"]
        assert facts["bytes_moved"] >= VOLUME  # slow but alive: every byte came back
        # 1 Mbit/s (125 kB/s) with a 16 kB burst lifting a 64 kB average; unshaped, this path does MB/s
        assert facts["throughput_bps"] < 1_000_000 / 8 * 3, (way, facts["throughput_bps"])
    usable.wait_for("alone", {**ONLINE, "socks": ("reachable", None), "wg": ("reachable", None)})
