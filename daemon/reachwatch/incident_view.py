"""Incidents as plain data for readers: the CLI, ``/api/v1/incidents``, the status page and reports.

One function builds the document every reader renders (``incidents_document``), so the API, the page,
``reachwatch incidents`` and a report show the same incidents with the same filters: open ones first,
then the newest; roll-ups stand for their members (which ``show`` lists); recurring patterns come with
their schedule in the vantage's local time. No HTML or terminal formatting here.

Users' safety: a private target is known by name only. Its examples, verdict changes and the reference
observation it relied on keep their times, failures, stages and techniques, but lose their facts and the
destination (they may name an address, an issuer of a private server, a fingerprint). Targets the
config does not know any more are treated as private.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from reachwatch.incident_patterns import Arranged, Pattern
from reachwatch.incidents import Incident

IsPrivate = Callable[[str], bool]


@dataclass(frozen=True)
class Filters:
    """What a reader asked for; ``None`` is "any"."""

    scope: str | None = None  # a target, group or kind name, or the vantage's name
    technique: str | None = None  # a technique, a shutdown state, or "none" (no evidence)
    status: str | None = None  # "open" or "closed"

    def keeps(self, incident: Incident) -> bool:
        if self.status is not None and ("open" if incident.open else "closed") != self.status:
            return False
        if self.technique is not None:
            techniques = incident.technique_list or ["none"]
            if self.technique not in techniques:
                return False
        if self.scope is not None:
            names = {incident.scope, *incident.targets}
            if self.scope not in names and self.scope not in (incident.group, incident.kind):
                return False
        return True

    def keeps_pattern(self, pattern: Pattern) -> bool:
        return any(self.keeps(i) for i in pattern.incidents)


def local_time(ts: float | None, zone: tzinfo) -> str | None:
    """``2022-01-05 18:02:00 +06`` in the vantage's time zone (None stays None)."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S %z")
    return text[:-2] if text.endswith("00") else text  # +0600 -> +06, +0530 stays


def utc_time(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _order(incident: Incident) -> tuple[int, float]:
    return (0 if incident.open else 1, -incident.start.by)


def _redacted(doc: dict[str, Any]) -> dict[str, Any]:
    """A private target's incident without facts or destinations (times, failures, techniques stay)."""
    for evidence in doc["evidence"]:
        for example in evidence["examples"]:
            example["facts"] = {}
    for change in doc["verdict_changes"]:
        change["facts"] = {}
        change["compared"] = {}
        reference = change.get("reference")
        if reference is not None:
            reference["facts"] = {}
            reference["destination"] = None
    return doc


def incident_doc(incident: Incident, zone: tzinfo, is_private: IsPrivate) -> dict[str, Any]:
    """One incident as the readers show it: its data, local times, private targets by name only."""
    doc = incident.to_dict()
    if incident.scope_type == "target" and is_private(incident.scope):
        doc = _redacted(doc)
        doc["private"] = True
    else:
        doc["private"] = False
    for evidence in doc["evidence"]:
        for example in evidence["examples"]:
            example["started_at_local"] = local_time(example["started_at"], zone)
    for record in (*doc["verdict_changes"], *doc["phases"]):
        record["at_local"] = local_time(record["at"], zone)
        reference = record.get("reference")
        if reference is not None:
            reference["observed_at_local"] = local_time(reference["observed_at"], zone)
    doc["start"]["local"] = local_time(incident.start.by, zone)
    doc["start"]["after_local"] = local_time(incident.start.after, zone)
    if doc["end"] is not None and incident.end is not None:
        doc["end"]["local"] = local_time(incident.end.by, zone)
        doc["end"]["after_local"] = local_time(incident.end.after, zone)
    return doc


def incidents_document(
    arranged: Arranged,
    *,
    vantage: str,
    zone: tzinfo,
    is_private: IsPrivate,
    filters: Filters = Filters(),
    period: tuple[float, float] | None = None,
    generated_at: float | None = None,
) -> dict[str, Any]:
    """The incidents document (``/api/v1/incidents``; shape in docs/ARCHITECTURE.md)."""
    # asked for a scope, a target's own incidents are listed even inside a roll-up
    candidates = arranged.top_level() if filters.scope is None else arranged.incidents
    chosen = sorted((i for i in candidates if filters.keeps(i)), key=_order)
    patterns = [p for p in arranged.patterns if filters.keeps_pattern(p)]
    counts = Counter("open" if i.open else "closed" for i in chosen)
    return {
        "vantage": vantage,
        "timezone": str(zone),
        "generated_at": generated_at,
        "period": {"since": period[0], "until": period[1]} if period is not None else None,
        "filters": {"scope": filters.scope, "technique": filters.technique, "status": filters.status},
        "counts": {
            "open": counts.get("open", 0),
            "closed": counts.get("closed", 0),
            "patterns": len(patterns),
        },
        "incidents": [incident_doc(i, zone, is_private) for i in chosen],
        "patterns": [p.to_dict() for p in patterns],
    }


def find(arranged: Arranged, ident: str, zone: tzinfo, is_private: IsPrivate) -> dict[str, Any] | None:
    """One incident with its members (or one pattern with its incidents) by id; None if unknown."""
    by_id = {i.id: i for i in arranged.incidents}
    incident = by_id.get(ident)
    if incident is not None:
        doc = incident_doc(incident, zone, is_private)
        doc["member_incidents"] = [
            incident_doc(by_id[m], zone, is_private) for m in incident.members if m in by_id
        ]
        return {"incident": doc}
    for pattern in arranged.patterns:
        if pattern.id == ident:
            return {
                "pattern": pattern.to_dict(),
                "incidents": [
                    incident_doc(i, zone, is_private) for i in sorted(pattern.incidents, key=_order)
                ],
            }
    return None


def private_names(configured: Iterable[tuple[str, bool]]) -> IsPrivate:
    """``is_private`` from the config's (name, private) pairs; a name the config does not know is private."""
    public = {name for name, private in configured if not private}
    return lambda name: name not in public
