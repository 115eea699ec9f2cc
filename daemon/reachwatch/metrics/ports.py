"""``reachwatch_port_open``: per port survey target, each configured port and transport, 1 when its last
survey found it open (the canary's keyed reply came back), 0 when closed or filtered; absent while
untested (no ping socket allowed, the survey's deadline ran out) or never surveyed.

Labels: the target labels plus ``proto`` (``tcp``, ``udp``, ``icmp``) and ``port`` (the number; ``0`` for
ICMP). Rendered at scrape time from each survey's last result, read back only for the target's
configured ports (``portsurvey.port_results``), so the series are bounded by the config.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reachwatch.config.targets.port_survey import PortSurveyTarget
from reachwatch.portsurvey import KIND, configured_labels, port_results
from reachwatch.state import StateStore

LABELS = ["target", "kind", "group", "role", "proto", "port"]


class PortSurveyCollector(Collector):
    """Renders the last survey of every ``port_survey`` target."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "reachwatch_port_open",
            "1 if the last port survey reached the canary on this port and transport, 0 if closed or "
            "filtered (absent: untested).",
            labels=LABELS,
        )
        for state in sorted(list(self.store.targets.values()), key=lambda s: s.name):
            target, last = state.target, state.last
            if not isinstance(target, PortSurveyTarget) or last is None or last.kind != KIND:
                continue
            for port in port_results(configured_labels(target), last.facts):
                if port.state == "untested":
                    continue
                labels = [
                    target.name,
                    target.kind,
                    target.group,
                    state.role_label,
                    port.proto,
                    str(port.port),
                ]
                family.add_metric(labels, 1.0 if port.state == "open" else 0.0)
        yield family
