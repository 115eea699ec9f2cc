"""Incidents derived from the journal: when a block or a shutdown began, when it ended, how, and proof.

The rule, stated first (the functions below only apply it):

- A **target incident** opens when the target's confirmed verdict becomes ``blocked`` or
  ``unreachable`` and closes when it is ``reachable`` again. ``unknown`` (the vantage was cut off, the
  daemon restarted and has not confirmed yet) neither opens nor closes one: a block that outlasts a
  shutdown or a restart stays ONE incident. Controls have no target incidents (their outages are the
  vantage's).
- A **vantage incident** (a shutdown) opens when the vantage state becomes ``international_shutdown``
  or ``offline`` and closes when it is ``online`` again; ``unknown`` neither opens nor closes it. Its
  phases list each state it went through.
- **Start and end carry their uncertainty**, read from the attempts themselves: the change happened
  after the last good attempt and at or before the first bad one (start), after the last bad attempt
  and at or before the first good one (end). A good attempt succeeded without local evidence; for a
  vantage incident the attempts are the international controls'. The reported start is the first bad
  attempt, the end the first good one, so both lie within one probe interval of the real change.
- **Evidence**: per technique, the first and the latest attempt that showed it (failure, stage, local
  evidence, facts); the confirmed verdict changes inside the incident, each with the reference
  observation it relied on (the reference's attempt and its time); for a shutdown, the controls' results
  that decided each phase. ``attempts`` counts every attempt from the first bad to the closing one.

Everything here is pure: journal records in (``Attempt`` per results row, ``VantageChange``,
``VerdictChange``), ``Incident`` values out; roll-ups and recurring patterns are in
``incident_patterns``. The same code runs for ``reachwatch incidents``, the API, the report and the
daemon's metrics, so they always agree.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from reachwatch.failures import Technique, VantageState, Verdict
from reachwatch.journal_events import VantageChange, VerdictChange

# verdicts that open (or keep open) a target incident; "unknown" is neither good nor bad
_BAD_VERDICTS = frozenset({Verdict.BLOCKED.value, Verdict.UNREACHABLE.value})
_SHUTDOWN_STATES = frozenset({VantageState.INTERNATIONAL_SHUTDOWN.value, VantageState.OFFLINE.value})
TARGET_ROLE = "target"
INTERNATIONAL_CONTROL = "international_control"
SHUTDOWN = "shutdown"  # the incident kind of a vantage incident


class Attempt(NamedTuple):
    """One journaled attempt as incidents read it; ``facts`` stays JSON text until an example needs it.

    A tuple, built straight from an SQLite row (``Attempt._make``): a month of a 500-target journal is
    two million of them, and a frozen dataclass costs several times more to build.
    """

    target: str
    kind: str
    group: str
    role: str
    started_at: float
    success: bool
    verdict: str | None  # the confirmed verdict after this attempt
    technique: str | None
    failure: str | None = None
    stage: str | None = None
    evidence: str | None = None
    facts: str = "{}"
    row_id: int = 0  # the journal row (its facts are fetched for the attempts kept as examples only)

    @property
    def good(self) -> bool:
        """Succeeded with nothing the probe itself found tampered with."""
        return bool(self.success) and self.evidence is None


@dataclass(frozen=True)
class Bound:
    """When a change happened: after ``after`` (None: before the record starts) and at or before ``by``."""

    after: float | None
    by: float

    @property
    def uncertainty_s(self) -> float | None:
        return None if self.after is None else self.by - self.after

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.by, "after": self.after, "uncertainty_s": self.uncertainty_s}


def example(a: Attempt) -> dict[str, Any]:
    """An attempt that showed a technique, as evidence (its facts decoded only now)."""
    try:
        facts = json.loads(a.facts)
    except ValueError:
        facts = {}
    return {
        "started_at": a.started_at,
        "target": a.target,
        "failure": a.failure,
        "stage": a.stage,
        "local_evidence": a.evidence,
        "facts": dict(sorted(facts.items())) if isinstance(facts, dict) else {},
    }


@dataclass
class Incident:
    """One incident (target, roll-up or vantage); see the module docstring for the rule."""

    id: str
    scope_type: str  # "target", "group", "kind" or "vantage"
    scope: str  # the target name, the group, the kind, or the vantage's name
    start: Bound
    end: Bound | None  # None while open
    last_seen: float  # the newest attempt inside the incident
    kind: str | None = None  # the targets' kind (target incidents, kind roll-ups)
    group: str | None = None
    verdicts: list[str] = field(default_factory=list)  # blocked / unreachable, or the vantage states
    techniques: Counter[str] = field(default_factory=Counter)  # technique -> attempts confirmed with it
    attempts: int = 0
    failed_attempts: int = 0
    # technique (or failure) -> the first and the latest attempt that showed it
    examples: dict[str, list[Attempt]] = field(default_factory=dict)
    changes: list[VerdictChange] = field(default_factory=list)
    phases: list[VantageChange] = field(default_factory=list)  # vantage incidents: the state changes
    members: list[str] = field(default_factory=list)  # roll-ups: the target incidents' ids
    targets: list[str] = field(default_factory=list)  # roll-ups: the targets
    pattern: str | None = None  # the recurring pattern this incident belongs to

    @property
    def open(self) -> bool:
        return self.end is None

    @property
    def blocked(self) -> bool:
        """Evidence of censorship: a ``blocked`` verdict, or a shutdown."""
        return self.scope_type == "vantage" or Verdict.BLOCKED.value in self.verdicts

    @property
    def duration_s(self) -> float:
        """From the first bad attempt to the first good one (open: to the newest attempt so far)."""
        return (self.end.by if self.end is not None else self.last_seen) - self.start.by

    @property
    def technique_list(self) -> list[str]:
        """Techniques by how many attempts confirmed them, then by name; a shutdown names its states."""
        if self.scope_type == "vantage":
            return list(dict.fromkeys(p.state for p in self.phases if p.state in _SHUTDOWN_STATES))
        return [t for t, _ in sorted(self.techniques.items(), key=lambda kv: (-kv[1], kv[0]))]

    @property
    def technique(self) -> str:
        """The main technique: the most confirmed one; ``none`` without evidence (unreachable)."""
        techniques = self.technique_list
        return techniques[0] if techniques else "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope_type": self.scope_type,
            "scope": self.scope,
            "kind": self.kind,
            "group": self.group,
            "status": "open" if self.open else "closed",
            "blocked": self.blocked,
            "verdicts": list(self.verdicts),
            "technique": self.technique,
            "techniques": [
                {"technique": t, "attempts": self.techniques.get(t, 0)} for t in self.technique_list
            ],
            "start": self.start.to_dict(),
            "end": self.end.to_dict() if self.end is not None else None,
            "last_seen": self.last_seen,
            "duration_s": self.duration_s,
            "attempts": self.attempts,
            "failed_attempts": self.failed_attempts,
            "evidence": [
                {"technique": key, "examples": [example(a) for a in examples]}
                for key, examples in sorted(self.examples.items())
            ],
            "verdict_changes": [c.to_dict() for c in self.changes],
            "phases": [p.to_dict() for p in self.phases],
            "members": list(self.members),
            "targets": list(self.targets),
            "pattern": self.pattern,
        }


def incident_id(prefix: str, scope_type: str, scope: str, start: float) -> str:
    """Stable across derivations and restarts: the scope and its first bad attempt name it."""
    digest = hashlib.sha256(f"{scope_type}\0{scope}\0{start:.3f}".encode()).hexdigest()
    return f"{prefix}-{digest[:10]}"


# --- target incidents --------------------------------------------------------------------------------


class _Track:
    """One target's (or the international controls') last good and last bad attempt, as they come, and
    the bad ones since the last good one: how many, and the first (an incident's first example)."""

    __slots__ = (
        "first_bad",
        "first_bad_attempt",
        "first_good",
        "last_bad",
        "last_good",
        "prev_bad",
        "prev_good",
        "since_good",
    )

    def __init__(self) -> None:
        self.last_good: float | None = None
        self.prev_good: float | None = None  # the good attempt before last_good
        self.first_bad: float | None = None  # first bad attempt after last_good
        self.last_bad: float | None = None
        self.prev_bad: float | None = None
        self.first_good: float | None = None  # first good attempt after last_bad
        self.since_good = 0  # attempts since the last good one (the first bad included)
        self.first_bad_attempt: Attempt | None = None  # the first of them (kept after a good one)

    def see(self, a: Attempt) -> bool:
        """Note the attempt ``a``; True when it was good: it succeeded and showed no blocking evidence."""
        good = bool(a.success) and a.evidence is None
        self._see(a.started_at, good)
        self.since_good = 0 if good else self.since_good + 1
        if self.since_good == 1:
            self.first_bad_attempt = a
        return good

    def _see(self, at: float, good: bool) -> None:
        if good:
            if self.first_good is None:
                self.first_good = at
            self.prev_good, self.last_good, self.first_bad = self.last_good, at, None
        else:
            if self.first_bad is None:
                self.first_bad = at
            self.prev_bad, self.last_bad, self.first_good = self.last_bad, at, None

    def start(self, at: float) -> Bound:
        """The start of an incident confirmed by the attempt at ``at``: after the last good attempt, by the
        first bad one. Confirmed on a good attempt (a verdict resumed after a restart), no attempt was
        bad since: it began after the good attempt before this one."""
        if self.first_bad is not None:
            return Bound(self.last_good, self.first_bad)
        return Bound(self.prev_good if self.last_good == at else self.last_good, at)

    def end(self, at: float) -> Bound:
        """The end of an incident closed by the attempt at ``at`` (the same rule, good and bad swapped)."""
        if self.first_good is not None:
            return Bound(self.last_bad, self.first_good)
        return Bound(self.prev_bad if self.last_bad == at else self.last_bad, at)


def _example_key(a: Attempt) -> str:
    if a.verdict == Verdict.BLOCKED.value and a.technique:
        return a.technique
    return a.evidence or a.failure or "unknown_failure"


def target_incidents(attempts: Iterable[Attempt], changes: Iterable[VerdictChange] = ()) -> list[Incident]:
    """Incidents of ONE target from its attempts (oldest first) and its confirmed verdict changes."""
    deriver = TargetIncidents()
    for a in attempts:
        deriver.feed(a)
    attach_changes(deriver.incidents, changes)
    return deriver.incidents


class TargetIncidents:
    """``target_incidents`` fed one attempt at a time (oldest first), so a reader can stream a journal
    in its own order and keep only this small state per target."""

    __slots__ = (
        "control",
        "current",
        "first_good_inside",
        "incidents",
        "last_inside",
        "prev_inside",
        "track",
    )

    def __init__(self) -> None:
        self.incidents: list[Incident] = []
        self.track = _Track()
        self.current: Incident | None = None
        self.control: bool | None = None  # decided by the first attempt's role
        # while an incident is open: its latest bad attempt (or the one that opened it), the one before,
        # and the first good attempt after it: the end's bound
        self.last_inside = 0.0
        self.prev_inside: float | None = None
        self.first_good_inside: float | None = None

    def feed(self, a: Attempt) -> None:
        if self.control is None:
            self.control = a.role != TARGET_ROLE
        if self.control:  # a control has no incidents of its own: its outages are the vantage's
            return
        good = self.track.see(a)
        current = self.current
        if current is None:
            if a.verdict not in _BAD_VERDICTS:
                return
            current = self.current = self._open(a, good)
            self.prev_inside, self.last_inside, self.first_good_inside = None, a.started_at, None
        elif not good:
            self.prev_inside, self.last_inside, self.first_good_inside = self.last_inside, a.started_at, None
        elif self.first_good_inside is None:
            self.first_good_inside = a.started_at
        current.attempts += 1
        current.failed_attempts += 0 if good else 1
        current.last_seen = a.started_at
        current.kind, current.group = a.kind, a.group
        if a.verdict in _BAD_VERDICTS and a.verdict not in current.verdicts:
            current.verdicts.append(a.verdict)
        if a.verdict == Verdict.BLOCKED.value and a.technique:
            current.techniques[a.technique] += 1
        if not good and a.verdict != Verdict.UNKNOWN.value:  # an unknown one is the vantage's doing
            _keep_example(current, a)
        if a.verdict == Verdict.REACHABLE.value:
            current.end = self._end(a.started_at)
            self.current = None

    def _end(self, at: float) -> Bound:
        """After the incident's last bad attempt (or the one that opened it), by the first good one after
        it; closed by a failed attempt (a verdict resumed after a restart), after the one before."""
        if self.first_good_inside is not None:
            return Bound(self.last_inside, self.first_good_inside)
        return Bound(self.prev_inside if self.last_inside == at else self.last_inside, at)

    def note_change(self, change: VerdictChange) -> None:
        """A confirmed verdict change journaled with an attempt already fed (the daemon's live view):
        it belongs to the open incident, or to the one its attempt just closed."""
        incident = self.current
        if incident is None and self.incidents:
            last = self.incidents[-1]
            if last.end is not None and last.start.by <= change.at <= last.end.by:
                incident = last
        if incident is not None and change.at >= incident.start.by:
            incident.changes.append(change)

    def _open(self, a: Attempt, good: bool) -> Incident:
        start = self.track.start(a.started_at)
        previous = self.incidents[-1].end if self.incidents else None
        if previous is not None and start.by <= previous.by < a.started_at:
            # the verdict went back to reachable on a failed attempt (it lags) and left again: this one
            # began after the previous one was closed, not at the failures the previous one holds
            start = Bound(previous.by, a.started_at)
        before = max(self.track.since_good, 1)
        incident = Incident(
            id=incident_id("inc", "target", a.target, start.by),
            scope_type="target",
            scope=a.target,
            start=start,
            end=None,
            last_seen=a.started_at,
            kind=a.kind,
            group=a.group,
            attempts=before - 1,  # the bad attempts before the verdict followed; this one is counted next
            failed_attempts=before - (0 if good else 1),
        )
        self.incidents.append(incident)
        first_bad = self.track.first_bad_attempt
        if first_bad is not None and first_bad is not a and not good:
            _keep_example(incident, first_bad, _example_key(a))
        return incident


def _keep_example(incident: Incident, a: Attempt, key: str | None = None) -> None:
    """The first and the latest attempt per technique (their facts are decoded on output only); the
    first bad attempt counts for the technique the incident was confirmed with (``key``)."""
    examples = incident.examples.setdefault(key or _example_key(a), [])
    if len(examples) < 2:
        examples.append(a)
    elif examples[-1].started_at < a.started_at:
        examples[-1] = a


def attach_changes(incidents: list[Incident], changes: Iterable[VerdictChange]) -> None:
    """Each confirmed verdict change goes to the incident whose span holds it (by the attempt time)."""
    ordered = sorted(changes, key=lambda c: c.at)
    i = 0
    for incident in incidents:
        stop = incident.end.by if incident.end is not None else float("inf")
        while i < len(ordered) and ordered[i].at < incident.start.by:
            i += 1
        while i < len(ordered) and ordered[i].at <= stop:
            incident.changes.append(ordered[i])
            i += 1


# --- vantage incidents -------------------------------------------------------------------------------


def vantage_incidents(
    vantage: str, changes: Iterable[VantageChange], controls: Iterable[Attempt]
) -> list[Incident]:
    """Shutdown incidents from the vantage state changes and the international controls' attempts.

    Both inputs in any order: they are merged by time. The daemon decides (and journals) a change right
    after the attempt that decided it, so at equal times the attempt counts first.
    """
    events: list[tuple[float, int, VantageChange | Attempt]] = [(c.at, 1, c) for c in changes]
    events += [(a.started_at, 0, a) for a in controls]
    events.sort(key=lambda e: (e[0], e[1]))
    deriver = VantageIncidents(vantage)
    for _, _, item in events:
        if isinstance(item, VantageChange):
            deriver.change(item)
        else:
            deriver.attempt(item)
    return deriver.incidents


class VantageIncidents:
    """``vantage_incidents`` fed in time order, one control attempt or state change at a time."""

    def __init__(self, vantage: str) -> None:
        self.vantage = vantage
        self.incidents: list[Incident] = []
        self.current: Incident | None = None
        self.track = _Track()

    def attempt(self, a: Attempt) -> None:
        """An attempt of a control (only the international ones bound a shutdown)."""
        if a.role != INTERNATIONAL_CONTROL:
            return
        good = self.track.see(a)
        current = self.current
        if current is not None:
            current.attempts += 1
            current.failed_attempts += 0 if good else 1
            current.last_seen = max(current.last_seen, a.started_at)
            if not good:
                _keep_example(current, a)

    def change(self, c: VantageChange) -> None:
        current = self.current
        if c.state in _SHUTDOWN_STATES:
            if current is None:
                start = self.track.start(c.at)
                current = self.current = Incident(
                    id=incident_id("inc", "vantage", self.vantage, start.by),
                    scope_type="vantage",
                    scope=self.vantage,
                    start=start,
                    end=None,
                    last_seen=c.at,
                    kind=SHUTDOWN,
                    attempts=self.track.since_good,  # the failures before the state changed belong to it
                    failed_attempts=self.track.since_good,
                )
                self.incidents.append(current)
                first_bad = self.track.first_bad_attempt
                if first_bad is not None and self.track.since_good:
                    _keep_example(current, first_bad)
            current.phases.append(c)
            if c.state not in current.verdicts:
                current.verdicts.append(c.state)
        elif current is not None:
            current.phases.append(c)  # "unknown" too: a restart or a control not yet reporting
            if c.state == VantageState.ONLINE.value:
                current.end = self.track.end(c.at)
                self.current = None


def is_technique(value: str) -> bool:
    """A value of the technique vocabulary (filters accept these and the shutdown states)."""
    return value in {t.value for t in Technique} or value in _SHUTDOWN_STATES or value == "none"
