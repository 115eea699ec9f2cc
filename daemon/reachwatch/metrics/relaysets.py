"""Aggregate metrics for relay sets: per set and flag, how many relays were probed, reached, failed how.

Why aggregates: the Kazakhstan event this daemon must show ("connections to Tor relays fell ~40%") is a
ratio over thousands of relays. Per-relay series for 7,000 relays would be ~100k series and still need a
``sum by`` to read; here the panel is one query::

    reachwatch_tor_relayset_reachable{flag="Guard"} / reachwatch_tor_relayset_probed{flag="Guard"}

Like ``metrics.ReachwatchCollector`` this renders the ``StateStore`` at scrape time from each member's
*last* result, so the numbers are "as of the latest sweep" and a removed set disappears. Members are
``tor_relay`` targets with ``relay_set`` set (relay sets and the directory authorities). ``flag`` is
``all`` (every member) or one of the relay's consensus flags (a closed set, ``config.relaysets.KNOWN_FLAGS``),
so cardinality is sets x 15 flags x failures: bounded whatever the set size.

Per-relay series come from the main collector (``metrics.py``): relay-set members carry
``per_target_metrics=False`` unless their set asks for ``per_relay_metrics``, so that collector can skip
them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reachwatch.failures import Verdict
from reachwatch.state import StateStore

ALL = "all"
SET_LABELS = ("set", "flag")


class RelaySetCollector(Collector):
    """Renders per-set, per-flag counts of relay outcomes from the state store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def describe(self) -> Iterable[Metric]:
        return []  # keep registration from calling collect() before the store is filled

    def collect(self) -> Iterator[Metric]:
        members: Counter[tuple[str, ...]] = Counter()
        probed: Counter[tuple[str, ...]] = Counter()
        reachable: Counter[tuple[str, ...]] = Counter()
        failed: Counter[tuple[str, ...]] = Counter()
        verdicts: Counter[tuple[str, ...]] = Counter()
        for state in list(self.store.targets.values()):
            target = state.target
            if target.kind != "tor_relay":  # before getattr: a missing field costs pydantic an exception
                continue
            relay_set = getattr(target, "relay_set", None)
            if not relay_set:
                continue
            for flag in (ALL, *getattr(target, "relay_flags", ())):
                key = (relay_set, flag)
                members[key] += 1
                verdicts[(*key, state.verdict.value)] += 1
                last = state.last
                if last is None:
                    continue
                probed[key] += 1
                if last.success:
                    reachable[key] += 1
                elif last.failure is not None:
                    stage = last.stage.value if last.stage else ""
                    failed[(*key, stage, last.failure.value)] += 1

        yield _family(
            "reachwatch_tor_relayset_relays", "Relays in the set (with this flag).", SET_LABELS, members
        )
        yield _family(
            "reachwatch_tor_relayset_probed",
            "Relays of the set with at least one result.",
            SET_LABELS,
            probed,
            zero_for=members,
        )
        yield _family(
            "reachwatch_tor_relayset_reachable",
            "Relays whose last attempt succeeded (identity verified).",
            SET_LABELS,
            reachable,
            zero_for=members,
        )
        yield _family(
            "reachwatch_tor_relayset_failed",
            "Relays whose last attempt failed, by stage and failure.",
            (*SET_LABELS, "stage", "failure"),
            failed,
        )
        verdict_family = GaugeMetricFamily(
            "reachwatch_tor_relayset_verdict",
            "Relays of the set by current (confirmed) verdict.",
            labels=[*SET_LABELS, "verdict"],
        )
        for set_flag in sorted(members):
            for verdict in Verdict:
                verdict_family.add_metric([*set_flag, verdict.value], verdicts[(*set_flag, verdict.value)])
        yield verdict_family


def _family(
    name: str,
    help_text: str,
    labels: tuple[str, ...],
    counts: Counter[tuple[str, ...]],
    zero_for: Counter[tuple[str, ...]] | None = None,
) -> GaugeMetricFamily:
    """One gauge family; with ``zero_for``, every (set, flag) is present (0 rather than absent)."""
    family = GaugeMetricFamily(name, help_text, labels=list(labels))
    keys = set(counts) | set(zero_for or ())
    for key in sorted(keys):
        family.add_metric(list(key), counts.get(key, 0))
    return family
