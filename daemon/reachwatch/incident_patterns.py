"""Incidents seen together: roll-ups of targets that went down together, and recurring patterns.

- **Roll-up**: when two or more targets of one group (or of one kind) start an incident within
  ``rollup_window`` of the first of them, one group (or kind) incident holds them as members: "every
  bridge went at 18:02" is one event, not twelve. A kind roll-up with exactly the members of a group
  roll-up adds nothing and is left out. Members stay incidents of their own (their evidence is theirs).
- **Recurring pattern**: the same scope (a target not rolled up, a roll-up's group or kind, the vantage)
  with incidents starting at about the same LOCAL time of day (within ``tolerance`` either side, across
  midnight too) on at least ``min_days`` different local days, regularly (on at least half the days
  from the first to the last, or always on the same weekday), each shorter than a day, is one pattern
  with its schedule ("19:00-23:00 Asia/Almaty, 5 days") instead of that many unrelated incidents (the
  evening blocking of 2018, the evening cuts around the January 2022 shutdown). Local time is the
  vantage's ``timezone``.

Pure: incidents in, roll-ups and patterns out (``arrange``).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from reachwatch.incidents import Incident, incident_id

DAY = 86400.0
_MINUTES = 24 * 60


@dataclass(frozen=True)
class ArrangeSettings:
    """How incidents are rolled up and when repetitions make a pattern (config: ``incidents``)."""

    timezone: tzinfo
    rollup_window: float = 900.0
    min_days: int = 3
    tolerance: float = 3600.0


@dataclass
class Pattern:
    """Incidents of one scope that recur at about the same local time of day."""

    id: str
    scope_type: str
    scope: str
    zone: tzinfo  # local time of the schedule
    incidents: list[Incident] = field(default_factory=list)

    @property
    def timezone(self) -> str:
        return str(self.zone)

    @property
    def days(self) -> list[str]:
        return sorted({_local(i.start.by, self.zone).date().isoformat() for i in self.incidents})

    def schedule(self) -> dict[str, Any]:
        """Typical local start and end (medians), how long, on which weekdays."""
        starts = [_minute_of_day(i.start.by, self.zone) for i in self.incidents]
        center = _circular_median(starts)
        durations = [i.duration_s for i in self.incidents if not i.open] or [
            i.duration_s for i in self.incidents
        ]
        typical = statistics.median(durations)
        end = (center + round(typical / 60)) % _MINUTES
        ordered = sorted(self.incidents, key=lambda i: i.start.by)
        weekdays = list(dict.fromkeys(_local(i.start.by, self.zone).strftime("%a") for i in ordered))
        return {
            "start_local": _hhmm(center),
            "end_local": _hhmm(end),
            "typical_duration_s": typical,
            "timezone": self.timezone,
            "weekdays": weekdays,  # in the order the occurrences came
            "text": f"{_hhmm(center)}-{_hhmm(end)} {self.timezone} on {len(self.days)} days",
        }

    def to_dict(self) -> dict[str, Any]:
        techniques = Counter(t for i in self.incidents for t in i.technique_list[:1])
        return {
            "id": self.id,
            "scope_type": self.scope_type,
            "scope": self.scope,
            "status": "open" if any(i.open for i in self.incidents) else "closed",
            "technique": techniques.most_common(1)[0][0] if techniques else "none",
            "schedule": self.schedule(),
            "days": self.days,
            "first_start": min(i.start.by for i in self.incidents),
            "last_start": max(i.start.by for i in self.incidents),
            "incidents": [i.id for i in self.incidents],
        }


@dataclass
class Arranged:
    """Every incident (targets, roll-ups, vantage) and the patterns among them."""

    incidents: list[Incident]
    patterns: list[Pattern]

    def top_level(self) -> list[Incident]:
        """What a reader lists: roll-ups, target incidents not in one, and vantage incidents."""
        rolled = {m for i in self.incidents for m in i.members}
        return [i for i in self.incidents if i.id not in rolled]


def arrange(incidents: Iterable[Incident], settings: ArrangeSettings) -> Arranged:
    """Roll up what went together, then find the recurring patterns among what a reader lists."""
    base = list(incidents)
    everything = base + rollups(base, settings.rollup_window)
    arranged = Arranged(everything, [])
    arranged.patterns = patterns(arranged.top_level(), settings)
    return arranged


def rollups(incidents: list[Incident], window: float) -> list[Incident]:
    """Group and kind incidents for targets that started together (see the module docstring)."""
    targets = sorted((i for i in incidents if i.scope_type == "target"), key=lambda i: (i.start.by, i.id))
    out: list[Incident] = []
    group_members: set[frozenset[str]] = set()
    for scope_type in ("group", "kind"):
        by_scope: dict[str, list[Incident]] = defaultdict(list)
        for incident in targets:
            key = incident.group if scope_type == "group" else incident.kind
            if key is not None:
                by_scope[key].append(incident)
        for scope, members in sorted(by_scope.items()):
            for cluster in _clusters(members, window):
                ids = frozenset(m.id for m in cluster)
                if len({m.scope for m in cluster}) < 2 or (scope_type == "kind" and ids in group_members):
                    continue
                if scope_type == "group":
                    group_members.add(ids)
                out.append(_rollup(scope_type, scope, cluster))
    return out


def _clusters(members: list[Incident], window: float) -> list[list[Incident]]:
    clusters: list[list[Incident]] = []
    for incident in members:  # sorted by start
        if clusters and incident.start.by - clusters[-1][0].start.by <= window:
            clusters[-1].append(incident)
        else:
            clusters.append([incident])
    return clusters


def _rollup(scope_type: str, scope: str, members: list[Incident]) -> Incident:
    first = members[0]
    still_open = any(m.open for m in members)
    last_end = None if still_open else max((m.end for m in members if m.end is not None), key=lambda b: b.by)
    kinds = {m.kind for m in members}
    groups = {m.group for m in members}
    rollup = Incident(
        id=incident_id("inc", scope_type, scope, first.start.by),
        scope_type=scope_type,
        scope=scope,
        start=first.start,
        end=last_end,
        last_seen=max(m.last_seen for m in members),
        kind=kinds.pop() if len(kinds) == 1 else None,
        group=groups.pop() if len(groups) == 1 else None,
        members=[m.id for m in members],
        targets=sorted({m.scope for m in members}),
    )
    for m in members:
        rollup.attempts += m.attempts
        rollup.failed_attempts += m.failed_attempts
        rollup.techniques.update(m.techniques)
        rollup.verdicts.extend(v for v in m.verdicts if v not in rollup.verdicts)
    return rollup


# --- recurring patterns ------------------------------------------------------------------------------


def _local(ts: float, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(ts, zone)


def _minute_of_day(ts: float, zone: tzinfo) -> int:
    local = _local(ts, zone)
    return local.hour * 60 + local.minute


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _distance(a: int, b: int) -> int:
    """Minutes between two times of day, across midnight."""
    d = abs(a - b) % _MINUTES
    return min(d, _MINUTES - d)


def _circular_median(minutes: list[int]) -> int:
    """The member that is closest to all others (a median that survives 23:50 and 00:10)."""
    return min(minutes, key=lambda m: (sum(_distance(m, o) for o in minutes), m))


def _recurs(dates: list[date], settings: ArrangeSettings) -> bool:
    """Enough days, and regular: on at least half the days from the first to the last (daily-ish), or
    always on the same weekday (weekly). Three chance outages at similar hours in a month are neither."""
    days = set(dates)
    if len(days) < settings.min_days:
        return False
    span = (max(days) - min(days)).days + 1
    return len(days) * 2 >= span or len({d.weekday() for d in days}) == 1


def patterns(incidents: list[Incident], settings: ArrangeSettings) -> list[Pattern]:
    """Recurring patterns per scope; each incident joins at most one (its ``pattern`` is set)."""
    zone = settings.timezone
    tolerance = settings.tolerance / 60
    by_scope: dict[tuple[str, str], list[Incident]] = defaultdict(list)
    for incident in incidents:
        if incident.duration_s < DAY:
            by_scope[(incident.scope_type, incident.scope)].append(incident)
    out: list[Pattern] = []
    for (scope_type, scope), members in sorted(by_scope.items()):
        remaining = sorted(members, key=lambda i: i.start.by)
        while len(remaining) >= settings.min_days:
            minutes = {i.id: _minute_of_day(i.start.by, zone) for i in remaining}
            best: list[Incident] = []
            for center in remaining:
                near = [i for i in remaining if _distance(minutes[i.id], minutes[center.id]) <= tolerance]
                if len(near) > len(best) and _recurs(
                    [_local(i.start.by, zone).date() for i in near], settings
                ):
                    best = near
            if not best:
                break
            pattern = Pattern(
                id=incident_id("pat", scope_type, scope, best[0].start.by),
                scope_type=scope_type,
                scope=scope,
                zone=zone,
                incidents=best,
            )
            for incident in best:
                incident.pattern = pattern.id
            out.append(pattern)
            chosen = {i.id for i in best}
            remaining = [i for i in remaining if i.id not in chosen]
    return out
