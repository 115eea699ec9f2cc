"""The vantage's own connectivity, read from the controls' latest results.

Before any target can be called blocked we must know the vantage itself is on the Internet: a laptop
on a dead uplink sees every target fail, and so does a country during an international shutdown
(Kazakhstan, January 2022), when domestic sites keep working. Controls are known-good targets, domestic
and international; their latest outcomes decide the state:

- ``online``: at least one international control succeeded;
- ``international_shutdown``: some domestic control succeeded and every international one failed;
- ``offline``: every control failed;
- ``unknown``: no controls configured, or not every control has reported yet while none succeeded
  (so we never announce an outage from the first failing control of a staggered start).

A control's result counts only while it is fresh (``controls.max_age``): an old success must not keep a
vantage whose controls stopped reporting "online". A control that completed TLS with a substituted
certificate (local evidence ``tls_interception``) reached a server: it counts as reached for the vantage
state, and its own verdict is the interception.

The functions are pure; ``reading_from_store`` only collects the inputs from a ``StateStore``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

from reachwatch.failures import Failure, Technique, VantageState
from reachwatch.model import ProbeResult
from reachwatch.state import StateStore

DEFAULT_CONTROL_MAX_AGE = 600.0


class VantageReading(NamedTuple):
    """A vantage state and, in words, why (shown in logs and the API)."""

    state: VantageState
    reason: str


def vantage_state(domestic: Sequence[bool | None], international: Sequence[bool | None]) -> VantageReading:
    """The vantage state from the latest outcome of each control.

    Each item is one configured control: ``True`` (last attempt succeeded), ``False`` (failed) or
    ``None`` (no result yet).
    """
    if not domestic and not international:
        return VantageReading(VantageState.UNKNOWN, "no controls configured")
    if any(ok is True for ok in international):
        return VantageReading(VantageState.ONLINE, "an international control is reachable")
    everything = [*domestic, *international]
    if all(ok is None for ok in everything):
        return VantageReading(VantageState.UNKNOWN, "no control results yet")
    domestic_ok = any(ok is True for ok in domestic)
    if not international and domestic_ok:
        # with only domestic controls there is no way to tell the Internet from the national network
        return VantageReading(VantageState.UNKNOWN, "no international controls configured")
    if any(ok is None for ok in international):
        return VantageReading(VantageState.UNKNOWN, "waiting for the international controls' first results")
    if domestic_ok:
        return VantageReading(
            VantageState.INTERNATIONAL_SHUTDOWN,
            "domestic controls reachable, every international control failed",
        )
    if any(ok is None for ok in domestic):
        return VantageReading(VantageState.UNKNOWN, "waiting for the domestic controls' first results")
    return VantageReading(VantageState.OFFLINE, "every control failed")


def control_reached(result: ProbeResult | None, now: float, max_age: float) -> bool | None:
    """What one control's latest attempt says about the vantage: reached, failed, or nothing (none yet,
    or older than ``max_age`` seconds)."""
    if result is None or now - (result.started_at + result.duration_s) > max_age:
        return None
    if result.success:
        return True
    # a substituted certificate came from somewhere: the handshake completed, the path is up
    return result.evidence is Technique.TLS_INTERCEPTION and result.failure is not Failure.INTERNAL_ERROR


def reading_from_store(
    store: StateStore, now: float | None = None, max_age: float = DEFAULT_CONTROL_MAX_AGE
) -> VantageReading:
    """The vantage state from the fresh latest results of the controls held in ``store``."""
    now = time.time() if now is None else now
    domestic: list[bool | None] = []
    international: list[bool | None] = []
    stale = False
    for state in store.controls():
        ok = control_reached(state.last, now, max_age)
        stale |= ok is None and state.last is not None
        (domestic if state.role == "domestic" else international).append(ok)
    reading = vantage_state(domestic, international)
    if stale and reading.state is VantageState.UNKNOWN:
        return VantageReading(reading.state, f"control results older than controls.max_age ({max_age:g} s)")
    return reading


def update_store(
    store: StateStore, now: float | None = None, max_age: float = DEFAULT_CONTROL_MAX_AGE
) -> tuple[VantageReading, bool]:
    """Recompute the vantage state into ``store``; returns the reading and whether the state changed."""
    reading = reading_from_store(store, now, max_age)
    return reading, store.set_vantage(reading.state, reading.reason)
