"""What the port surveys found, as plain data for the status page, the API, the metrics and the report.

A ``port_survey`` attempt (``probes/port_survey.py``) leaves its per-port outcome in its facts (lists of
labels such as ``179/tcp``: ``ports_open``, ``ports_closed``, ``ports_filtered``, ``ports_untested``, and
``port_failures``). This module reads them back, always against the target's configured ports (so a
label a journal row or a hostile fact adds can never grow a metric or a table), and answers the
question the operator has during a shutdown: *which ports still reach abroad?*

- ``port_results``: one survey result, port by port;
- ``PortsSeen``: in the daemon, which ports each survey found open since the vantage state last changed
  ("during this shutdown, 179/tcp and 3785/udp still reached abroad", live);
- ``status_section``: the ``ports`` part of ``/api/v1/status`` (and of the status page);
- ``surveys_between`` / ``ports_reached`` / ``incident_section``: the same from the journal, for a period
  or an incident of the report.

No HTML here: the page and the report render these dicts.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reachwatch.config.ports import Proto, parse_port_label, port_label
from reachwatch.config.targets.port_survey import PortSurveyTarget
from reachwatch.config.types import TargetBase
from reachwatch.failures import VantageState
from reachwatch.model import FactValue, ProbeResult
from reachwatch.state import StateStore

if TYPE_CHECKING:
    from reachwatch.incidents import Incident

KIND = "port_survey"
STATES = ("open", "closed", "filtered", "untested")
_SHUTDOWN = frozenset({VantageState.INTERNATIONAL_SHUTDOWN.value, VantageState.OFFLINE.value})


@dataclass(frozen=True)
class PortResult:
    """One port of one survey: its state and, when not open, the failure and stage."""

    proto: Proto
    port: int
    state: str
    failure: str | None = None
    stage: str | None = None

    @property
    def label(self) -> str:
        return port_label(self.proto, self.port)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "proto": self.proto,
            "port": self.port if self.proto != "icmp" else None,
            "state": self.state,
            "failure": self.failure,
            "stage": self.stage,
        }


def configured_labels(target: PortSurveyTarget) -> list[str]:
    """The target's ports as labels, in survey order (TCP, UDP, then the echo)."""
    labels = [port_label("tcp", p) for p in target.tcp_ports] + [
        port_label("udp", p) for p in target.udp_ports
    ]
    return [*labels, port_label("icmp")] if target.icmp else labels


def _labels(facts: Mapping[str, FactValue], key: str) -> set[str]:
    value: object = facts.get(key)  # journal rows are JSON: anything may be there
    items: list[object] = list(value) if isinstance(value, list) else []
    return {v for v in items if isinstance(v, str)}


def _failures(facts: Mapping[str, FactValue]) -> dict[str, tuple[str, str | None]]:
    """``label -> (failure, stage)`` from ``port_failures`` (``22/tcp:connect:connection_refused``)."""
    out: dict[str, tuple[str, str | None]] = {}
    for item in _labels(facts, "port_failures"):
        label, _, rest = item.partition(":")
        stage, _, failure = rest.partition(":")
        if failure:
            out[label] = (failure, None if stage == "-" else stage)
    return out


def states_of(facts: Mapping[str, FactValue]) -> dict[str, str]:
    """``label -> state`` from a survey's facts (any labels; callers bound them)."""
    out: dict[str, str] = {}
    for state in STATES:
        for label in _labels(facts, f"ports_{state}"):
            out.setdefault(label, state)
    return out


def port_results(labels: Iterable[str], facts: Mapping[str, FactValue]) -> list[PortResult]:
    """The ports ``labels`` (a target's configured ports) as ``facts`` report them; a port the facts
    do not mention is left out (the survey predates a config change)."""
    states, failures = states_of(facts), _failures(facts)
    out = []
    for label in labels:
        state = states.get(label)
        if state is None:
            continue
        proto, port = parse_port_label(label)
        failure, stage = failures.get(label, (None, None)) if state != "open" else (None, None)
        out.append(PortResult(proto, port, state, failure, stage))
    return out


def join_labels(labels: list[str]) -> str:
    """``179/tcp``, ``179/tcp and 3785/udp``, ``22/tcp, 179/tcp and 3785/udp``."""
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def reached_sentence(state: str, open_labels: list[str], surveyed: int) -> str:
    """The one sentence an operator needs, for a vantage ``state`` and the ports seen open in it."""
    if state in _SHUTDOWN:
        what = "shutdown" if state == VantageState.INTERNATIONAL_SHUTDOWN.value else "outage"
        if open_labels:
            return f"During this {what}, {join_labels(open_labels)} still reached abroad."
        return f"During this {what}, none of the {surveyed} surveyed ports reached abroad."
    return f"{len(open_labels)} of {surveyed} surveyed ports reach the canary abroad."


@dataclass
class PortsSeen:
    """Per survey target, the ports found open since the vantage entered its current state (first and
    last time seen). Reset when the state changes; bounded by the configured ports."""

    state: str = VantageState.UNKNOWN.value
    since: float = 0.0
    open: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def observe(self, store: StateStore, target: TargetBase, result: ProbeResult) -> None:
        """Take one attempt of ``target`` (ignored unless it is a port survey)."""
        if store.vantage_state.value != self.state or store.vantage_since != self.since:
            self.state, self.since, self.open = store.vantage_state.value, store.vantage_since, {}
        if not isinstance(target, PortSurveyTarget) or result.kind != KIND:
            return
        seen = self.open.setdefault(target.name, {})
        for port in port_results(configured_labels(target), result.facts):
            if port.state == "open":
                first, _ = seen.get(port.label, (result.started_at, result.started_at))
                seen[port.label] = (first, result.started_at)

    def retain(self, names: set[str]) -> None:
        for name in [n for n in self.open if n not in names]:
            del self.open[name]


def status_section(store: StateStore, seen: PortsSeen | None = None) -> dict[str, Any] | None:
    """The ``ports`` part of the status document; ``None`` without port surveys."""
    surveys = []
    everything_open: list[str] = []
    surveyed = 0
    current = seen if seen is not None and seen.state == store.vantage_state.value else None
    for state in sorted(store.targets.values(), key=lambda s: s.name):
        target = state.target
        if not isinstance(target, PortSurveyTarget):
            continue
        labels = configured_labels(target)
        last = state.last if state.last is not None and state.last.kind == KIND else None
        ports = port_results(labels, last.facts) if last is not None else []
        counts = {s: sum(1 for p in ports if p.state == s) for s in STATES}
        tracked = current.open.get(target.name) if current is not None else None
        if tracked is not None:
            opened = tracked
        elif last is not None and last.started_at >= store.vantage_since:  # no tracker: the last survey
            opened = {p.label: (last.started_at, last.started_at) for p in ports if p.state == "open"}
        else:
            opened = {}
        open_now = [label for label in labels if label in opened]
        everything_open += [label for label in open_now if label not in everything_open]
        surveyed = max(surveyed, len(labels))
        surveys.append(
            {
                "target": target.name,
                "group": target.group,
                "surveyed_at": last.started_at if last else None,
                "ports": [p.to_dict() for p in ports],
                "counts": counts,
                "open_in_state": [
                    {"label": label, "first": opened[label][0], "last": opened[label][1]}
                    for label in open_now
                ],
            }
        )
    if not surveys:
        return None
    return {
        "vantage_state": store.vantage_state.value,
        "since": store.vantage_since,
        "sentence": reached_sentence(store.vantage_state.value, everything_open, surveyed),
        "surveys": surveys,
    }


# --- from the journal (the report) ------------------------------------------------------------------


@dataclass(frozen=True)
class Survey:
    """One journaled survey: when, which target, and each port's state."""

    target: str
    started_at: float
    states: dict[str, str]


def surveys_between(conn: sqlite3.Connection, since: float, until: float) -> list[Survey]:
    """Journaled port surveys in ``[since, until)``, oldest first; undecodable rows are skipped."""
    rows = conn.execute(
        "SELECT target, started_at, facts FROM results WHERE kind = ? AND started_at >= ? AND started_at < ?"
        " ORDER BY started_at, id",
        (KIND, since, until),
    )
    out = []
    for target, started_at, facts_text in rows:
        try:
            facts = json.loads(facts_text) if facts_text else {}
        except ValueError:
            continue
        if isinstance(facts, dict):
            out.append(Survey(str(target), float(started_at), states_of(facts)))
    return out


@dataclass
class PortTally:
    """How one port fared over a period: surveys that tried it, found it open, first and last open."""

    label: str
    tried: int = 0
    open: int = 0
    first_open: float | None = None
    last_open: float | None = None


def ports_reached(surveys: Iterable[Survey]) -> list[PortTally]:
    """Per port label, over ``surveys``: the ports found open at least once first (by label order of
    first appearance), then the others. Labels are bounded: each survey lists its configured ports."""
    tallies: dict[str, PortTally] = {}
    for survey in surveys:
        for label, state in survey.states.items():
            if state == "untested":
                continue
            tally = tallies.setdefault(label, PortTally(label))
            tally.tried += 1
            if state == "open":
                tally.open += 1
                tally.first_open = survey.started_at if tally.first_open is None else tally.first_open
                tally.last_open = survey.started_at
    return sorted(tallies.values(), key=lambda t: (t.open == 0, _order(t.label)))


def _order(label: str) -> tuple[int, int]:
    try:
        proto, port = parse_port_label(label)
    except ValueError:
        return (3, 0)
    return ({"tcp": 0, "udp": 1, "icmp": 2}[proto], port)


def unix_time(ts: float) -> str:
    """A time as whole unix seconds (the report passes the vantage's local time instead)."""
    return f"{ts:.0f}"


def incident_section(
    conn: sqlite3.Connection,
    start: float,
    end: float,
    state: str,
    when: Callable[[float], str | None] = unix_time,
) -> dict[str, Any] | None:
    """The report's block for a shutdown (or outage) from ``start`` to ``end``: which ports still reached
    abroad, in the shape of ``report_sections.section`` (cells are text; ``when`` writes a time, e.g. in
    the vantage's zone); ``None`` when no survey ran in it."""
    surveys = surveys_between(conn, start, end)
    if not surveys:
        return None
    tallies = ports_reached(surveys)
    open_labels = [t.label for t in tallies if t.open]
    sentence = reached_sentence(state, open_labels, len(tallies))

    def at(ts: float | None) -> str:
        return (when(ts) or "-") if ts is not None else "-"

    def row(t: PortTally) -> list[str]:
        return [
            t.label,
            "yes" if t.open else "no",
            f"{t.open} of {t.tried}",
            at(t.first_open),
            at(t.last_open),
        ]

    return {
        "id": "ports",
        "title": "Ports that still reached abroad",
        "paragraphs": [sentence, f"{len(surveys)} port surveys ran in this period."],
        "table": {
            "columns": ["port", "reached abroad", "surveys that reached it", "first reached", "last reached"],
            "rows": [
                [
                    t.label,
                    "yes" if t.open else "no",
                    f"{t.open} of {t.tried}",
                    at(t.first_open),
                    at(t.last_open),
                ]
                for t in tallies
            ],
        },
    }


def incident_ports(
    conn: sqlite3.Connection, incident: Incident, when: Callable[[float], str | None] = unix_time
) -> dict[str, Any] | None:
    """``incident_section`` for a vantage incident of ``incidents`` (a shutdown or an outage); ``None``
    for any other incident. For the report's per-incident hook (``report_sections.INCIDENT_SECTIONS``)."""
    if incident.scope_type != "vantage":
        return None
    end = incident.end.by if incident.end is not None else incident.last_seen + 1.0
    return incident_section(conn, incident.start.by, end, incident.technique, when)
