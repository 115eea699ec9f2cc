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

The functions are pure; ``reading_from_store`` only collects the inputs from a ``StateStore``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from reachwatch.failures import VantageState
from reachwatch.state import StateStore


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


def reading_from_store(store: StateStore) -> VantageReading:
    """The vantage state from the latest results of the controls held in ``store``."""
    domestic: list[bool | None] = []
    international: list[bool | None] = []
    for state in store.controls():
        ok = state.last.success if state.last is not None else None
        (domestic if state.role == "domestic" else international).append(ok)
    return vantage_state(domestic, international)


def update_store(store: StateStore) -> tuple[VantageReading, bool]:
    """Recompute the vantage state into ``store``; returns the reading and whether the state changed."""
    reading = reading_from_store(store)
    return reading, store.set_vantage(reading.state, reading.reason)
