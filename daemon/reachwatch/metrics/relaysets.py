"""Aggregate metrics for relay sets: per set and flag, country and AS, how many relays were probed,
reached (identity verified), failed how, and the verdict/technique mix.

Why aggregates: the Kazakhstan event this daemon must show ("connections to Tor relays fell ~40%") is a
ratio over thousands of relays. Per-relay series for 7,000 relays would be ~100k series and still need a
``sum by`` to read; here the panel is one query::

    reachwatch_tor_relayset_reachable{flag="all"} / reachwatch_tor_relayset_probed{flag="all"}

Like ``metrics.ReachwatchCollector`` this renders the ``StateStore`` at scrape time from each member's
*last* result, so the numbers are "as of the latest sweep", and a relay that left the consensus (its state
dropped by ``Scheduler.set_generated``) or a removed set disappears. Members are ``tor_relay`` targets
with ``relay_set`` set (relay sets, the directory authorities, the fallback directories); bridges are
``tor_bridge`` targets and never counted here.

Cardinality stays bounded whatever the set size: ``flag`` is ``all`` or one of the closed set
``config.relaysets.KNOWN_FLAGS``; ``country`` and ``as`` are the ``top`` values with most members in the
set (``tor.geoip.top``), ``unknown`` (no GeoIP answer) and ``other`` (the rest summed), so a set has at
most ``top + 2`` of each (the AS label is ``asn``: ``AS1234``). ``reachwatch_tor_relayset_outcomes``
gives the mix of confirmed verdicts and techniques per aggregate (``by`` = flag, country or asn).

Live sets also report their refreshes (``RefreshStatus``, kept by ``relaywatch``): when the member list
was last replaced, how many refreshes failed, and the valid-after time of the document it came from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.failures import Verdict
from reachwatch.state import StateStore, TargetState

ALL = "all"
OTHER = "other"
UNKNOWN = "unknown"
SET_LABELS = ("set", "flag")


@dataclass
class RefreshStatus:
    """One relay set's refreshes (``relaywatch.RelaySetWatcher``)."""

    name: str
    source: str  # "file", "tor", "onionoo"
    members: int = 0
    last_success: float = 0.0  # wall time the member list was last replaced (or confirmed unchanged)
    successes: int = 0
    failures: int = 0
    valid_after: float | None = None  # the consensus' valid-after (wall time), when the document has one


class _Counts:
    """The per-group counters of one dimension (flag, country or as)."""

    def __init__(self) -> None:
        self.members: Counter[tuple[str, str]] = Counter()
        self.probed: Counter[tuple[str, str]] = Counter()
        self.reachable: Counter[tuple[str, str]] = Counter()
        self.failed: Counter[tuple[str, str, str, str]] = Counter()
        self.outcomes: Counter[tuple[str, str, str, str]] = Counter()

    def add(self, key: tuple[str, str], n: int, verdict: str, technique: str, result: _Result) -> None:
        """``n`` members under ``key`` with this confirmed verdict/technique and last result."""
        self.members[key] += n
        self.outcomes[(*key, verdict, technique)] += n
        if result is None:
            return
        self.probed[key] += n
        if result is True:
            self.reachable[key] += n
        elif result is not False:
            self.failed[(*key, *result)] += n


# a member's last result: None (not probed yet), True (reached), (stage, failure) or False (no failure)
_Result = bool | tuple[str, str] | None


def _last_result(state: TargetState) -> _Result:
    last = state.last
    if last is None:
        return None
    if last.success:
        return True
    if last.failure is None:
        return False
    return (last.stage.value if last.stage else "", last.failure.value)


def _top(members: Counter[tuple[str, str]], top: int) -> dict[tuple[str, str], str]:
    """``(set, value) -> label``: the ``top`` values with most members per set keep their name."""
    by_set: dict[str, list[tuple[int, str]]] = {}
    for (relay_set, value), count in members.items():
        by_set.setdefault(relay_set, []).append((-count, value))
    labels: dict[tuple[str, str], str] = {}
    for relay_set, ranked in by_set.items():
        named = [value for _, value in sorted(ranked) if value != UNKNOWN][:top]
        for _, value in ranked:
            keep = value == UNKNOWN or value in named
            labels[(relay_set, value)] = value if keep else OTHER
    return labels


def _fold(counts: _Counts, labels: dict[tuple[str, str], str]) -> _Counts:
    """The counters with every value outside the top folded into ``other``."""
    folded = _Counts()
    for source, target in (
        (counts.members, folded.members),
        (counts.probed, folded.probed),
        (counts.reachable, folded.reachable),
    ):
        for (relay_set, value), n in source.items():
            target[(relay_set, labels[(relay_set, value)])] += n
    for wide_source, wide_target in ((counts.failed, folded.failed), (counts.outcomes, folded.outcomes)):
        for (relay_set, value, a, b), n in wide_source.items():
            wide_target[(relay_set, labels[(relay_set, value)], a, b)] += n
    return folded


def count(states: Iterable[TargetState], top: int) -> tuple[_Counts, _Counts, _Counts]:
    """Relay-set members counted by (set, flag), (set, country) and (set, AS), the last two folded to the
    ``top`` values per set plus ``unknown`` and ``other``.

    Members are first grouped by everything the counts depend on (set, flags, country, AS, verdict,
    technique, last result): 7,000 relays make a few hundred groups, so the per-member cost is one
    tuple and one increment, and the enum values are read once per group (a scrape of a 7,000-member set
    took ~0.3 s when every member was added to every counter).
    """
    groups: Counter[tuple[Any, ...]] = Counter()
    for state in states:
        target = state.target
        if not isinstance(target, TorRelayTarget) or not target.relay_set:
            continue
        groups[
            (
                target.relay_set, target.relay_flags, target.relay_country, target.relay_as,
                state.verdict, state.technique, _last_result(state),
            )
        ] += 1  # fmt: skip
    flags, countries, ases = _Counts(), _Counts(), _Counts()
    for (relay_set, relay_flags, country, asn, verdict, technique, result), n in groups.items():
        outcome = (verdict.value, technique.value if technique is not None else "", result)
        for flag in (ALL, *relay_flags):
            flags.add((relay_set, flag), n, *outcome)
        countries.add((relay_set, country or UNKNOWN), n, *outcome)
        ases.add((relay_set, asn or UNKNOWN), n, *outcome)
    return flags, _fold(countries, _top(countries.members, top)), _fold(ases, _top(ases.members, top))


def summary(states: Iterable[TargetState], relay_set: str, top: int) -> dict[str, list[dict[str, Any]]]:
    """One set's shares as plain data (``reachwatch check --relay-set``): per dimension (``flag``,
    ``country``, ``asn``) a list of ``{group, relays, probed, reachable}``, largest first."""
    doc: dict[str, list[dict[str, Any]]] = {}
    for by, counts in zip(("flag", "country", "asn"), count(states, top), strict=True):
        rows = [
            {
                "group": group,
                "relays": n,
                "probed": counts.probed[(name, group)],
                "reachable": counts.reachable[(name, group)],
            }
            for (name, group), n in counts.members.items()
            if name == relay_set
        ]
        doc[by] = sorted(
            rows, key=lambda r: (r["group"] != ALL, r["group"] in (OTHER, UNKNOWN), -r["relays"], r["group"])
        )
    return doc


class RelaySetCollector(Collector):
    """Renders per-set counts of relay outcomes by flag, country and AS from the state store."""

    def __init__(
        self,
        store: StateStore,
        top: Callable[[], int] = lambda: 10,
        refreshes: Callable[[], list[RefreshStatus]] = list,
    ) -> None:
        self.store = store
        self.top = top
        self.refreshes = refreshes

    def describe(self) -> Iterable[Metric]:
        return []  # keep registration from calling collect() before the store is filled

    def collect(self) -> Iterator[Metric]:
        flags, countries, ases = count(list(self.store.targets.values()), self.top())

        yield from _dimension("", "flag", "(with this flag)", flags, verdicts=True)
        yield from _dimension("country_", "country", "in this country (GeoIP or Onionoo)", countries)
        yield from _dimension("as_", "asn", "in this AS (ip2asn or Onionoo)", ases)

        outcomes = GaugeMetricFamily(
            "reachwatch_tor_relayset_outcomes",
            "Relays of the set by confirmed verdict and technique, per flag, country or AS "
            "(by names the dimension, group its value).",
            labels=["set", "by", "group", "verdict", "technique"],
        )
        for by, counts in (("flag", flags), ("country", countries), ("asn", ases)):
            for (relay_set, group, verdict, technique), n in sorted(counts.outcomes.items()):
                outcomes.add_metric([relay_set, by, group, verdict, technique], n)
        yield outcomes
        yield from _refresh_families(self.refreshes())


def _dimension(
    prefix: str, label: str, where: str, counts: _Counts, *, verdicts: bool = False
) -> Iterator[Metric]:
    labels = ("set", label)
    name = f"reachwatch_tor_relayset_{prefix}"
    yield _family(f"{name}relays", f"Relays in the set {where}.", labels, counts.members)
    yield _family(
        f"{name}probed", f"Relays of the set {where} with at least one result.", labels, counts.probed,
        zero_for=counts.members,
    )  # fmt: skip
    yield _family(
        f"{name}reachable",
        f"Relays of the set {where} whose last attempt succeeded (identity verified).",
        labels,
        counts.reachable,
        zero_for=counts.members,
    )
    yield _family(
        f"{name}failed",
        f"Relays of the set {where} whose last attempt failed, by stage and failure.",
        (*labels, "stage", "failure"),
        counts.failed,
    )
    if verdicts:  # the flag dimension's older family, kept for its panels and rules
        family = GaugeMetricFamily(
            "reachwatch_tor_relayset_verdict",
            "Relays of the set by current (confirmed) verdict.",
            labels=[*SET_LABELS, "verdict"],
        )
        by_verdict: Counter[tuple[str, str, str]] = Counter()
        for (relay_set, flag, verdict, _), n in counts.outcomes.items():
            by_verdict[(relay_set, flag, verdict)] += n
        for set_flag in sorted(counts.members):
            for verdict_value in Verdict:
                family.add_metric(
                    [*set_flag, verdict_value.value], by_verdict[(*set_flag, verdict_value.value)]
                )
        yield family


def _refresh_families(statuses: list[RefreshStatus]) -> Iterator[Metric]:
    members = GaugeMetricFamily(
        "reachwatch_tor_relayset_source_members",
        "Relays the set's source listed at its last successful refresh (after flags and sample).",
        labels=["set", "source"],
    )
    last = GaugeMetricFamily(
        "reachwatch_tor_relayset_refresh_success_timestamp_seconds",
        "When the set's member list was last refreshed successfully (0: never).",
        labels=["set", "source"],
    )
    valid_after = GaugeMetricFamily(
        "reachwatch_tor_relayset_consensus_valid_after_timestamp_seconds",
        "valid-after of the consensus the set's members come from (consensus sources only).",
        labels=["set", "source"],
    )
    refreshes = CounterMetricFamily(
        "reachwatch_tor_relayset_refreshes",
        "Refreshes of the set's member list, by result (a failed one keeps the last list).",
        labels=["set", "source", "result"],
    )
    for status in sorted(statuses, key=lambda s: s.name):
        labels = [status.name, status.source]
        members.add_metric(labels, status.members)
        last.add_metric(labels, status.last_success)
        if status.valid_after is not None:
            valid_after.add_metric(labels, status.valid_after)
        refreshes.add_metric([*labels, "success"], status.successes)
        refreshes.add_metric([*labels, "failure"], status.failures)
    yield from (members, last, valid_after, refreshes)


def _family(
    name: str,
    help_text: str,
    labels: tuple[str, ...],
    counts: Mapping[Any, int],
    zero_for: Iterable[tuple[str, str]] = (),
) -> GaugeMetricFamily:
    """One gauge family; with ``zero_for``, every (set, group) is present (0 rather than absent)."""
    family = GaugeMetricFamily(name, help_text, labels=list(labels))
    values: dict[tuple[str, ...], int] = dict(counts)
    for zero in zero_for:
        values.setdefault(zero, 0)
    for key in sorted(values):
        family.add_metric(list(key), values[key])
    return family
