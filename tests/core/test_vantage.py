"""The vantage state follows the controls' latest results, and says why when it cannot tell."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reachwatch.config.load import parse_config
from reachwatch.failures import Failure, Stage, Technique, VantageState
from reachwatch.model import ProbeResult
from reachwatch.state import StateStore
from reachwatch.vantage import reading_from_store, update_store, vantage_state

ON, OFF, NONE = True, False, None
V = VantageState


@pytest.mark.parametrize(
    ("domestic", "international", "state", "reason_part"),
    [
        # nothing to go by
        ([], [], V.UNKNOWN, "no controls configured"),
        ([NONE], [NONE, NONE], V.UNKNOWN, "no control results yet"),
        # one working international control is enough
        ([OFF], [OFF, ON], V.ONLINE, "international control is reachable"),
        ([], [ON], V.ONLINE, "international"),
        ([OFF, OFF], [ON, NONE], V.ONLINE, "international"),
        # Kazakhstan, January 2022: domestic sites work, the world does not
        ([ON, OFF], [OFF, OFF], V.INTERNATIONAL_SHUTDOWN, "every international control failed"),
        # nothing works
        ([OFF], [OFF, OFF], V.OFFLINE, "every control failed"),
        ([], [OFF], V.OFFLINE, "every control failed"),
        ([OFF], [], V.OFFLINE, "every control failed"),
        # only domestic controls: the Internet cannot be told from the national network
        ([ON], [], V.UNKNOWN, "no international controls configured"),
        # a staggered start: no outage announced before every control has reported
        ([ON], [OFF, NONE], V.UNKNOWN, "waiting for the international"),
        ([NONE], [OFF], V.UNKNOWN, "waiting for the domestic"),
        ([OFF, NONE], [OFF], V.UNKNOWN, "waiting for the domestic"),
    ],
)
def test_vantage_state_table(
    domestic: list[bool | None], international: list[bool | None], state: VantageState, reason_part: str
) -> None:
    reading = vantage_state(domestic, international)
    assert reading.state is state
    assert reason_part in reading.reason


CONFIG = """
controls:
  domestic:
    - {name: egov, kind: tcp, host: 127.0.0.1, port: 1}
  international:
    - {name: wiki, kind: tcp, host: 127.0.0.1, port: 2}
    - {name: gstatic, kind: tcp, host: 127.0.0.1, port: 3}
targets:
  - {name: relay, kind: tcp, host: 127.0.0.1, port: 4}
"""


def _result(name: str, ok: bool) -> ProbeResult:
    if ok:
        return ProbeResult(target=name, kind="tcp", started_at=time.time(), duration_s=0.1, success=True)
    return ProbeResult(
        target=name,
        kind="tcp",
        started_at=time.time(),
        duration_s=0.1,
        success=False,
        failure=Failure.GENERIC_TIMEOUT_ERROR,
        stage=Stage.CONNECT,
    )


def test_store_reading_uses_latest_control_results_and_ignores_targets() -> None:
    cfg = parse_config(CONFIG, "t.yaml", Path.cwd()).config
    store = StateStore()
    for t in cfg.all_targets():
        store.ensure(t, cfg.control_role(t.name))
    assert reading_from_store(store).reason == "no control results yet"

    # a target's success says nothing about the vantage
    store.targets["relay"].record(_result("relay", True))
    assert reading_from_store(store).state is V.UNKNOWN

    for name, ok in [("egov", True), ("wiki", False), ("gstatic", False)]:
        store.targets[name].record(_result(name, ok))
    reading, changed = update_store(store)
    assert (reading.state, changed) == (V.INTERNATIONAL_SHUTDOWN, True)
    assert store.vantage_state is V.INTERNATIONAL_SHUTDOWN
    assert "international" in store.vantage_reason

    # only the latest result of each control counts
    store.targets["gstatic"].record(_result("gstatic", True))
    reading, changed = update_store(store)
    assert (reading.state, changed) == (V.ONLINE, True)
    _, changed = update_store(store)
    assert changed is False


def test_store_with_no_controls_says_so() -> None:
    cfg = parse_config("targets: [{name: a, kind: tcp, host: 127.0.0.1, port: 9}]", "t.yaml", Path.cwd())
    store = StateStore()
    for t in cfg.config.all_targets():
        store.ensure(t, None)
    reading, _ = update_store(store)
    assert reading.state is V.UNKNOWN
    assert store.vantage_reason == "no controls configured"


def test_a_stale_control_result_no_longer_keeps_the_vantage_online() -> None:
    """The controls stopped reporting (a stuck scheduler, a dead uplink that also stalls the probes): their
    last success must not keep calling the vantage online past controls.max_age."""
    cfg = parse_config(CONFIG, "t.yaml", Path.cwd()).config
    store = StateStore()
    for t in cfg.all_targets():
        store.ensure(t, cfg.control_role(t.name))
    for name in ("egov", "wiki", "gstatic"):
        store.targets[name].record(_result(name, True))
    now = time.time()
    assert update_store(store, now, max_age=600)[0].state is V.ONLINE
    reading, changed = update_store(store, now + 601, max_age=600)
    assert (reading.state, changed) == (V.UNKNOWN, True)
    assert "controls.max_age" in reading.reason


def test_an_intercepted_control_proves_the_vantage_online() -> None:
    """A control whose TLS completed with a substituted certificate reached a server: with every other
    control failing the vantage is online (and the control's own verdict is the interception)."""
    cfg = parse_config(CONFIG, "t.yaml", Path.cwd()).config
    store = StateStore()
    for t in cfg.all_targets():
        store.ensure(t, cfg.control_role(t.name))
    intercepted = ProbeResult(
        target="wiki",
        kind="tls",
        started_at=time.time(),
        duration_s=0.3,
        success=False,
        failure=Failure.SSL_UNKNOWN_AUTHORITY,
        stage=Stage.TLS_HANDSHAKE,
        evidence=Technique.TLS_INTERCEPTION,
    )
    store.targets["egov"].record(_result("egov", False))
    store.targets["gstatic"].record(_result("gstatic", False))
    store.targets["wiki"].record(intercepted)
    assert update_store(store)[0].state is V.ONLINE
    # a certificate failure without that evidence proves nothing (a dead control behind a captive portal)
    store.targets["wiki"].record(
        ProbeResult(
            target="wiki",
            kind="tls",
            started_at=time.time(),
            duration_s=0.3,
            success=False,
            failure=Failure.SSL_UNKNOWN_AUTHORITY,
            stage=Stage.TLS_HANDSHAKE,
        )
    )
    assert update_store(store)[0].state is V.OFFLINE
