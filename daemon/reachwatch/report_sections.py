"""Extra report sections from other features: the hook through which a feature adds what it knows.

Two literal lists, read by ``report.build``:

- ``SECTIONS``: functions ``(ReportContext) -> Section | None`` adding a section of the report (after
  the incidents, before the method);
- ``INCIDENT_SECTIONS``: functions ``(ReportContext, Incident) -> Section | None`` adding a block to one
  incident (e.g. "which ports still reached abroad during this shutdown", issue 16).

A ``Section`` is plain data, rendered by every format (HTML, Markdown, JSON; its shape is in
docs/report.schema.json)::

    {"id": "ports", "title": "Ports that still reached abroad",
     "paragraphs": ["..."],
     "table": {"columns": ["port", "protocol", "reached"], "rows": [[443, "tcp", true]]} | None}

Add a function to a list here (a literal, explicit registry: no import side effects). A function that
raises is reported as a one-line note in its place; the report is still written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from reachwatch.config.schema import Config
from reachwatch.incident_patterns import Arranged
from reachwatch.incident_view import IsPrivate, local_time
from reachwatch.incidents import Incident
from reachwatch.portsurvey import incident_ports

Section = dict[str, Any]


@dataclass(frozen=True)
class ReportContext:
    """What a section function may read: the journal (read-only), the config, the period, the incidents."""

    conn: sqlite3.Connection
    config: Config
    since: float
    until: float
    arranged: Arranged
    zone: tzinfo
    is_private: IsPrivate


SectionFn = Callable[[ReportContext], Section | None]
IncidentSectionFn = Callable[[ReportContext, Incident], Section | None]


def shutdown_ports(context: ReportContext, incident: Incident) -> Section | None:
    """A shutdown's ports that still reached abroad, from the port surveys (issue 16, ``portsurvey``)."""
    return incident_ports(context.conn, incident, lambda ts: local_time(ts, context.zone))


SECTIONS: list[SectionFn] = []
INCIDENT_SECTIONS: list[IncidentSectionFn] = [shutdown_ports]


def section(ident: str, title: str, paragraphs: list[str], table: dict[str, Any] | None = None) -> Section:
    """A section in the shape every renderer reads."""
    return {"id": ident, "title": title, "paragraphs": list(paragraphs), "table": table}
