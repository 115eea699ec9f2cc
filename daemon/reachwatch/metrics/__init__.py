"""Prometheus metrics: a custom Collector that renders the ``StateStore`` at scrape time.

Nothing here is updated on the hot path: every scrape reads the current state and builds fresh metric
families, so a target removed by a reload disappears from ``/metrics`` at once (the pattern the
client_python docs recommend for exporters). The names and labels are a contract with ``grafana/`` and
``deploy/prometheus/``; see the table in ``docs/ARCHITECTURE.md``.

Label discipline: target labels are ``target`` (the configured *name*), ``kind``, ``group`` and ``role``;
the rest are closed enums (``stage``, ``failure``, ``verdict``, ``technique``, ``state``). No label ever
carries raw error text or an address, so cardinality is bounded by the config and private targets are
known by name only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from reachwatch import __version__
from reachwatch.buildinfo import revision
from reachwatch.config.schema import Config
from reachwatch.config.types import TargetBase
from reachwatch.exposition import LabelMaker, LabelSet, TextFamily
from reachwatch.failures import Failure, VantageState, Verdict
from reachwatch.looplag import LoopLagMonitor
from reachwatch.metrics.ports import PortSurveyCollector
from reachwatch.metrics.relaysets import RefreshStatus, RelaySetCollector
from reachwatch.model import ProbeResult
from reachwatch.state import CUT_BUCKETS, CutPoints, StateStore, TargetState

TARGET_LABELS = ("target", "kind", "group", "role")
# per verdict, its label values: iterating an Enum costs ~10 µs, and this runs for every target
_VERDICTS = tuple((v, v.value) for v in Verdict)
_TARGET_LABEL_SET = LabelMaker(TARGET_LABELS)
# an issuer DN chosen by a censor is attacker-controlled text: cap it so one label cannot grow unbounded
MAX_INFO_VALUE = 128
# a presented issuer is only news when the chain failed validation or the pin (a substituted certificate)
_CERT_FAILURES = frozenset(
    {
        Failure.SSL_UNKNOWN_AUTHORITY,
        Failure.SSL_INVALID_CERTIFICATE,
        Failure.SSL_INVALID_HOSTNAME,
        Failure.SSL_PIN_MISMATCH,
    }
)


def _cert_rejected(result: ProbeResult) -> bool:
    return result.failure in _CERT_FAILURES or (
        result.evidence is not None and result.evidence.value == "tls_interception"
    )


@dataclass(frozen=True)
class FactMetric:
    """How one probe fact becomes a metric.

    ``info=False``: the fact is a number and becomes a gauge with the target labels.
    ``info=True``: the fact is text and becomes ``<name>{..., <label>="<value>"} 1``, value capped.
    ``when``: the fact is exported only when this returns True for the last result.
    """

    name: str
    help: str
    info: bool = False
    label: str = "value"
    when: Callable[[ProbeResult], bool] | None = None


# fact key -> metric. A probe that records a new numeric or info fact gets its metric by adding a row.
FACT_METRICS: dict[str, FactMetric] = {
    "throughput_bps": FactMetric(
        "reachwatch_throughput_bytes_per_second", "Throughput of the last transfer to the target."
    ),
    # the data stage of every circumvention kind (vpn/datastage.py)
    "bytes_moved": FactMetric(
        "reachwatch_probe_bytes_moved",
        "Payload bytes that came back through the way out in the last attempt's data stage.",
    ),
    "control_throughput_bps": FactMetric(
        "reachwatch_throughput_control_bytes_per_second",
        "Throughput of the same-size control transfer made with the last attempt.",
    ),
    "tls_issuer": FactMetric(
        "reachwatch_tls_presented_issuer_info",
        "1 when the presented certificate failed validation or the pin; the issuer is named.",
        info=True,
        label="issuer",
        when=_cert_rejected,
    ),
    # Tor bridges and bootstraps (probes/tor_bridge.py, probes/tor_bootstrap.py): the transport name is a
    # bounded value (vanilla, obfs4, snowflake, webtunnel, meek_lite, direct), never an address
    "transport": FactMetric(
        "reachwatch_tor_transport_info",
        "1; the pluggable transport of a Tor bridge or bootstrap target.",
        info=True,
        label="transport",
    ),
    "bootstrap_progress": FactMetric(
        "reachwatch_tor_bootstrap_progress_percent", "How far the last tor bootstrap got (0-100)."
    ),
    "bootstrap_seconds": FactMetric(
        "reachwatch_tor_bootstrap_seconds", "Time of the last tor bootstrap (to 100%, or until it stalled)."
    ),
    "bootstrap_tag": FactMetric(
        "reachwatch_tor_bootstrap_phase_info",
        "1; the bootstrap phase tag the last tor bootstrap reached (done, or where it stalled).",
        info=True,
        label="phase",
    ),
    # tor's ORCONN reason of the last bootstrap problem (connectrefused, timeout, identity ...): bounded
    "bootstrap_reason": FactMetric(
        "reachwatch_tor_bootstrap_reason_info",
        "1; the reason tor gave for the last bootstrap problem (control-spec ORCONN reason).",
        info=True,
        label="reason",
    ),
}


def cap_label_value(value: str) -> str:
    """Printable, single-line and at most ``MAX_INFO_VALUE`` characters."""
    clean = "".join(ch if ch.isprintable() else " " for ch in value).strip()
    return clean if len(clean) <= MAX_INFO_VALUE else clean[: MAX_INFO_VALUE - 1] + "…"


@dataclass(frozen=True)
class WebCounters:
    """The listener's state as the daemon metrics show it (``web.WebServer.counters``)."""

    connections: int = 0
    connection_limit: int = 0
    refused: int = 0
    auth_throttled: int = 0


@dataclass(frozen=True)
class ReferenceHealth:
    """One reference vantage as the daemon metrics show it (from ``reference.ReferenceClient``)."""

    name: str
    fetched_at: float | None  # wall time of the last fetch attempt; None before the first
    up: bool  # the last fetch succeeded
    fetches: int
    fetch_failures: int  # rejected answers included
    rejected: int = 0  # answers a pinned key did not vouch for (forged, unsigned, replayed)


@dataclass(frozen=True)
class StartLagSnapshot:
    """The scheduler's start-lag histogram: cumulative ``(le, count)`` buckets and the sum of seconds."""

    buckets: list[tuple[str, float]]
    total: float


class IncidentSource(Protocol):
    """The daemon's live incidents (``incident_live.LiveIncidents``) as metrics read them."""

    def open_incidents(self) -> Sequence[OpenIncidentLike]: ...

    def counts(self) -> Mapping[tuple[str, str], int]: ...


class OpenIncidentLike(Protocol):
    @property
    def scope_type(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def technique(self) -> str: ...
    @property
    def since(self) -> float: ...


@dataclass
class DaemonStatus:
    """Daemon-level facts the collector renders beside the target states (owned by ``app.Daemon``)."""

    config: Config = field(default_factory=Config)
    reload_successful: bool = True
    reload_success_timestamp: float = 0.0
    in_flight: Callable[[], int] = lambda: 0
    journal_write_errors: Callable[[], int] = lambda: 0
    journal_set_aside: Callable[[], int] = lambda: 0
    journal_rows_skipped: int = 0  # rows the daemon could not decode when it read the journal
    web: Callable[[], WebCounters] = WebCounters
    references: Callable[[], list[ReferenceHealth]] = list
    start_lag: Callable[[], StartLagSnapshot | None] = lambda: None
    loop_lag: LoopLagMonitor = field(default_factory=LoopLagMonitor)
    incidents: IncidentSource | None = None  # None without a journal
    relay_sets: Callable[[], list[RefreshStatus]] = list  # live relay sets' refreshes (relaywatch)


@functools.cache
def _has_per_target_flag(kind_model: type[TargetBase]) -> bool:
    return "per_target_metrics" in kind_model.model_fields


def _per_target(target: TargetBase) -> bool:
    """False for e.g. members of a large relay set: aggregated by metrics/relaysets.py instead."""
    # asked of the class first: getattr with a default on a pydantic model that lacks the field goes
    # through its __getattr__ and an exception (~2 µs, once per target per scrape)
    return not _has_per_target_flag(type(target)) or bool(getattr(target, "per_target_metrics", True))


class ReachwatchCollector(Collector):
    """Renders the state store and the daemon status on every scrape."""

    def __init__(self, store: StateStore, status: DaemonStatus) -> None:
        self.store = store
        self.status = status

    def describe(self) -> Iterable[Metric]:
        # an empty describe keeps registration from calling collect() (the store may still be empty)
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._daemon_metrics()
        yield self._cut_points()
        if self.status.config.web.per_target_metrics:
            yield from self._target_metrics(list(self.store.targets.values()))

    def _cut_points(self) -> Metric:
        """Where data stages were cut, per group and kind: a censor's byte threshold shows as a peak."""
        merged: dict[tuple[str, str], CutPoints] = {}
        for state in self.store.targets.values():
            if not state.cuts.total:
                continue
            into = merged.setdefault((state.target.group, state.target.kind), CutPoints())
            into.counts = [a + b for a, b in zip(into.counts, state.cuts.counts, strict=True)]
            into.total += state.cuts.total
            into.sum += state.cuts.sum
        family = HistogramMetricFamily(
            "reachwatch_probe_transfer_bytes",
            "Bytes that came back before a data stage was cut (cut_after_bytes), per group and kind.",
            labels=["group", "kind"],
        )
        bounds = [*(str(float(b)) for b in CUT_BUCKETS), "+Inf"]
        for (group, kind), cuts in sorted(merged.items()):
            cumulative, running = [], 0
            for bound, count in zip(bounds, cuts.counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            family.add_metric([group, kind], cumulative, cuts.sum)
        return family

    def _daemon_metrics(self) -> Iterator[Metric]:
        status = self.status
        build = GaugeMetricFamily(
            "reachwatch_build_info",
            "1; the reachwatch version and the source revision it was built from.",
            labels=["version", "revision"],
        )
        build.add_metric([__version__, revision()], 1)
        yield build
        yield from self._scheduler_metrics()
        yield from self._reference_metrics()
        v = status.config.vantage
        info = GaugeMetricFamily(
            "reachwatch_vantage_info",
            "The vantage point this daemon measures from.",
            labels=["vantage", "country", "asn", "isp", "city"],
        )
        info.add_metric([v.name, v.country, v.asn, v.isp, v.city], 1)
        yield info
        vstate = GaugeMetricFamily(
            "reachwatch_vantage_state",
            "1 for the current vantage state (from the controls).",
            labels=["state"],
        )
        for s in VantageState:
            vstate.add_metric([s.value], 1 if self.store.vantage_state is s else 0)
        yield vstate
        yield GaugeMetricFamily(
            "reachwatch_vantage_state_change_timestamp_seconds",
            "When the vantage state last changed.",
            value=self.store.vantage_since,
        )
        yield GaugeMetricFamily(
            "reachwatch_config_last_reload_successful",
            "1 if the last configuration load succeeded.",
            value=1 if status.reload_successful else 0,
        )
        yield GaugeMetricFamily(
            "reachwatch_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully.",
            value=status.reload_success_timestamp,
        )
        yield GaugeMetricFamily(
            "reachwatch_probes_in_flight", "Probe attempts running now.", value=status.in_flight()
        )
        yield CounterMetricFamily(
            "reachwatch_journal_write_errors",
            "Journal writes that failed (results not persisted).",
            value=status.journal_write_errors(),
        )
        yield CounterMetricFamily(
            "reachwatch_journal_damaged_set_aside",
            "Damaged journal files set aside (renamed, kept) and replaced by a fresh journal.",
            value=status.journal_set_aside(),
        )
        yield CounterMetricFamily(
            "reachwatch_journal_rows_skipped",
            "Journal rows this version could not decode (e.g. written by a newer version); skipped.",
            value=status.journal_rows_skipped,
        )
        yield GaugeMetricFamily(
            "reachwatch_targets", "Configured targets, controls included.", value=len(self.store.targets)
        )
        lag = status.loop_lag
        yield HistogramMetricFamily(
            "reachwatch_event_loop_lag_seconds",
            "How late the event loop ran a task that slept (probe timings are taken on this loop).",
            buckets=lag.cumulative(),
            sum_value=lag.total,
        )
        if status.incidents is not None:
            yield from _incident_metrics(status.incidents)
        web = status.web()
        yield GaugeMetricFamily(
            "reachwatch_web_connections", "Connections the HTTP listener holds now.", value=web.connections
        )
        yield GaugeMetricFamily(
            "reachwatch_web_connection_limit",
            "Most connections the listener holds (within the descriptor budget, probes' share kept).",
            value=web.connection_limit,
        )
        yield CounterMetricFamily(
            "reachwatch_web_connections_refused",
            "Connections closed at once because the listener was at its limit.",
            value=web.refused,
        )
        yield CounterMetricFamily(
            "reachwatch_web_auth_throttled",
            "Requests answered 429 without a password check (too many failures, or checks waiting).",
            value=web.auth_throttled,
        )

    def _scheduler_metrics(self) -> Iterator[Metric]:
        lag = self.status.start_lag()
        if lag is None:
            return
        family = HistogramMetricFamily(
            "reachwatch_scheduler_start_lag_seconds",
            "How late scheduled attempts started (gates and a busy event loop included).",
        )
        family.add_metric([], lag.buckets, lag.total)
        yield family

    def _reference_metrics(self) -> Iterator[Metric]:
        references = self.status.references()
        up = GaugeMetricFamily(
            "reachwatch_reference_up",
            "1 if the last fetch of the reference vantage's status succeeded (absent before the first).",
            labels=["reference"],
        )
        fetched = GaugeMetricFamily(
            "reachwatch_reference_last_fetch_timestamp_seconds",
            "When the reference vantage's status was last fetched (success or not).",
            labels=["reference"],
        )
        fetches = CounterMetricFamily(
            "reachwatch_reference_fetches",
            "Fetches of the reference vantage's status, by result (rejected: not signed by the pinned key).",
            labels=["reference", "result"],
        )
        for ref in references:
            if ref.fetched_at is not None:
                up.add_metric([ref.name], 1 if ref.up else 0)
                fetched.add_metric([ref.name], ref.fetched_at)
            fetches.add_metric([ref.name, "ok"], ref.fetches - ref.fetch_failures)
            fetches.add_metric([ref.name, "error"], ref.fetch_failures - ref.rejected)
            fetches.add_metric([ref.name, "rejected"], ref.rejected)
        yield from (up, fetched, fetches)

    def _target_metrics(self, states: list[TargetState]) -> Iterator[Metric]:
        default_interval = self.status.config.defaults.interval

        def family(
            name: str, doc: str, extra: tuple[str, ...] = (), typ: Literal["gauge", "counter"] = "gauge"
        ) -> TextFamily:
            return TextFamily(name, doc, typ, TARGET_LABELS, extra)

        success = family("reachwatch_probe_success", "1 if the last attempt succeeded.")
        duration = family("reachwatch_probe_duration_seconds", "Duration of the last attempt.")
        stage_dur = family(
            "reachwatch_probe_stage_duration_seconds",
            "Time spent in each stage of the last attempt.",
            ("stage",),
        )
        probes = family("reachwatch_probes", "Probe attempts.", typ="counter")
        failures = family(
            "reachwatch_probe_failures",
            "Failed probe attempts by stage and failure.",
            ("stage", "failure"),
            "counter",
        )
        verdict = family("reachwatch_target_verdict", "1 for the current verdict.", ("verdict",))
        blocked = family(
            "reachwatch_target_blocked", "1 while the target is blocked with this technique.", ("technique",)
        )
        changed = family(
            "reachwatch_target_verdict_change_timestamp_seconds", "When the verdict last changed."
        )
        last_ts = family("reachwatch_target_last_probe_timestamp_seconds", "Start of the last attempt.")
        interval = family("reachwatch_target_interval_seconds", "Configured probe interval.")
        fact_families = {
            key: family(fm.name, fm.help, (fm.label,) if fm.info else ()) for key, fm in FACT_METRICS.items()
        }
        # target_info carries the user labels, which differ per target: its rows bring their own names
        info = TextFamily(
            "reachwatch_target_info", "1 per target; carries the user's labels for joins.", "gauge", ()
        )
        # label sets are built per scrape (~1.5 µs a target): kept between scrapes they would cost more
        # memory (~0.4 kB a target) than they save time
        for state in sorted(states, key=lambda s: s.target.name):
            t = state.target
            if not _per_target(t):
                continue
            values = (t.name, t.kind, t.group, state.role_label)
            labels = _TARGET_LABEL_SET(values)
            interval.add(labels, t.interval or default_interval)
            probes.add(labels, state.probes_total)
            if state.failures_total:
                for (stage, failure), count in sorted(
                    state.failures_total.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])
                ):
                    failures.add(labels, count, stage.value if stage else "none", failure.value)
            for v, verdict_label in _VERDICTS:
                verdict.add(labels, 1 if state.verdict is v else 0, verdict_label)
            if state.verdict is Verdict.BLOCKED and state.technique is not None:
                blocked.add(labels, 1, state.technique.value)
            changed.add(labels, state.verdict_since)
            if t.labels:
                info.add(LabelSet.of({**t.labels, **dict(zip(TARGET_LABELS, values, strict=True))}), 1)
            else:
                info.add(labels, 1)
            last = state.last
            if last is None:
                continue
            success.add(labels, 1 if last.success else 0)
            duration.add(labels, last.duration_s)
            last_ts.add(labels, last.started_at)
            for stage_name, seconds in sorted(last.stage_durations.items()):
                stage_dur.add(labels, seconds, stage_name)
            if not last.facts:
                continue
            for key, fm in FACT_METRICS.items():
                value = last.facts.get(key)
                if value is None or (fm.when is not None and not fm.when(last)):
                    continue
                if fm.info:
                    fact_families[key].add(labels, 1, cap_label_value(str(value)))
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    fact_families[key].add(labels, float(value))

        yield from (success, duration, stage_dur, probes, failures, verdict, blocked, changed, last_ts)
        if self.status.config.web.blackbox_compat_metrics:
            yield from (blackbox_alias(f) for f in (success, duration, stage_dur))
        yield from (interval, *fact_families.values())
        yield info


BLACKBOX_PREFIX = "reachwatch_"


def blackbox_alias(family: TextFamily) -> TextFamily:
    """The same series under blackbox_exporter's name (``reachwatch_probe_success`` -> ``probe_success``).

    Only behind ``web.blackbox_compat_metrics``: a Prometheus that also scrapes blackbox_exporter
    usually runs the community ``BlackboxProbeFailed`` rule (``probe_success == 0``), which would page
    for every target a censor blocks (deploy/prometheus/README.md).
    """
    name = family.name.removeprefix(BLACKBOX_PREFIX)
    alias = TextFamily(
        name, family.documentation + " (blackbox_exporter name)", "gauge", family.base, family.extra
    )
    cut = len(BLACKBOX_PREFIX)
    alias.lines = [line[cut:] for line in family.lines]
    return alias


def _incident_metrics(source: IncidentSource) -> Iterator[Metric]:
    """Open incidents by scope and technique, and how many the live window holds.

    Labels are bounded: ``scope_type`` is one of four, ``scope`` a configured target, group or kind name
    or the vantage's name, ``technique`` a closed vocabulary (a shutdown's current state, ``none`` for an
    outage without evidence). Two open incidents with the same labels (two roll-ups of one group) count 2.
    """
    labels = ["scope_type", "scope", "technique"]
    open_now = GaugeMetricFamily(
        "reachwatch_incident_open",
        "Open incidents (from the journal), by scope and technique.",
        labels=labels,
    )
    since = GaugeMetricFamily(
        "reachwatch_incident_open_since_timestamp_seconds",
        "Start (first bad attempt) of the oldest open incident with these labels.",
        labels=labels,
    )
    grouped: dict[tuple[str, str, str], list[float]] = {}
    for incident in source.open_incidents():
        key = (incident.scope_type, incident.scope, incident.technique)
        grouped.setdefault(key, []).append(incident.since)
    for key, starts in sorted(grouped.items()):
        open_now.add_metric(list(key), len(starts))
        since.add_metric(list(key), min(starts))
    yield open_now
    yield since
    counts = GaugeMetricFamily(
        "reachwatch_incidents",
        "Incidents in the daemon's live window (incidents.window), by scope type and status.",
        labels=["scope_type", "status"],
    )
    found = source.counts()
    for scope_type in ("target", "group", "kind", "vantage"):
        for state in ("open", "closed"):
            counts.add_metric([scope_type, state], found.get((scope_type, state), 0))
    yield counts


def build_registry(store: StateStore, status: DaemonStatus) -> CollectorRegistry:
    """A fresh registry holding only the reachwatch collector (no process/platform defaults)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReachwatchCollector(store, status))
    # lambdas: the daemon replaces the config and the refresh source after the registry is built
    top = lambda: status.config.tor.geoip.top  # noqa: E731
    refreshes = lambda: status.relay_sets()  # noqa: E731, PLW0108
    registry.register(RelaySetCollector(store, top=top, refreshes=refreshes))
    registry.register(PortSurveyCollector(store))
    # process_* (CPU seconds, RSS, open fds): the cheapest way to see a daemon that leaks or spins
    ProcessCollector(registry=registry)
    return registry
