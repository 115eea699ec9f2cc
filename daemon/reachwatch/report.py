"""The incident report: one document a journalist or an NGO can publish, in HTML, Markdown or JSON.

``build`` assembles the document (plain data; docs/report.schema.json describes it) from the journal:
the vantage's operator-approved identity (the config's ``vantage`` section: name, country, ASN, ISP,
city; never an address), a summary, every incident with its evidence, the recurring patterns, sections
other features add (``report_sections``), the method in two paragraphs, and the raw data behind the
incidents as a JSONL attachment. ``report_html`` and ``report_md`` render it; JSON is the document.

The attachment holds what a reader needs to check each incident: the attempts of its targets (the
international controls' for a shutdown) from the last good attempt before it to the first good one
after, and every decision record of the period (vantage changes, verdict changes, reference
observations). It is bounded (``max_rows``; the rest is one ``reachwatch export`` away).

Private targets appear by name only: no facts, no destinations, in the incidents and in the attachment;
every string also passes the same redaction as the logs (values of private targets and secrets).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from reachwatch import __version__, journal
from reachwatch.config.schema import Config
from reachwatch.incident_patterns import Arranged
from reachwatch.incident_store import Period, arrange_settings, derive, is_private_in
from reachwatch.incident_view import incident_doc, local_time, utc_time
from reachwatch.incidents import Incident
from reachwatch.journal import ReadStats
from reachwatch.report_sections import INCIDENT_SECTIONS, SECTIONS, ReportContext, section

SCHEMA_ID = "reachwatch-report/1"
MAX_RAW_ROWS = 100_000


@dataclass
class Attachment:
    """The JSONL attachment: its lines and what the report says about them."""

    name: str
    lines: list[str]
    truncated: bool

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def describe(self) -> dict[str, Any]:
        data = self.text.encode()
        return {
            "name": self.name,
            "rows": len(self.lines),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "truncated": self.truncated,
        }


@dataclass
class Report:
    """The report document and its attachment (rendered by ``report_html`` / ``report_md``)."""

    doc: dict[str, Any]
    attachment: Attachment
    arranged: Arranged


def build(
    conn: sqlite3.Connection,
    config: Config,
    since: float,
    until: float,
    *,
    zone: tzinfo | None = None,
    name: str = "reachwatch-report",
    max_rows: int = MAX_RAW_ROWS,
    now: float | None = None,
) -> Report:
    """The report of ``[since, until)`` from an open (read-only) journal connection."""
    zone = zone or config.vantage.zone()
    stats = ReadStats()
    arranged = derive(conn, Period(since, until), config.vantage.name, arrange_settings(config, zone), stats)
    is_private = is_private_in(config)
    context = ReportContext(conn, config, since, until, arranged, zone, is_private)
    top = sorted(arranged.top_level(), key=lambda i: i.start.by)
    by_id = {i.id: i for i in arranged.incidents}
    incidents = []
    for incident in top:
        entry = incident_doc(incident, zone, is_private)
        members = [m for m in incident.members if m in by_id]
        entry["member_incidents"] = [incident_doc(by_id[m], zone, is_private) for m in members]
        entry["sections"] = _sections(INCIDENT_SECTIONS, context, incident)
        incidents.append(entry)
    attachment = Attachment(f"{name}.jsonl", *_raw_lines(context, max_rows, stats))
    v = config.vantage
    generated = time.time() if now is None else now
    doc: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "title": f"Internet incidents seen from {v.name}",
        "reachwatch_version": __version__,
        "generated_at": generated,
        "generated_at_utc": utc_time(generated),
        "timezone": str(zone),
        "period": {
            "since": since,
            "until": until,
            "since_utc": utc_time(since),
            "until_utc": utc_time(until),
            "since_local": local_time(since, zone),
            "until_local": local_time(until, zone),
        },
        "vantage": {"name": v.name, "country": v.country, "asn": v.asn, "isp": v.isp, "city": v.city},
        "summary": _summary(top, arranged),
        "incidents": incidents,
        "patterns": [p.to_dict() for p in arranged.patterns],
        "sections": _sections(SECTIONS, context),
        "method": method(config),
        "attachment": attachment.describe(),
        "journal": {"rows_skipped": stats.skipped},
    }
    return Report(doc, attachment, arranged)


def _summary(top: list[Incident], arranged: Arranged) -> dict[str, Any]:
    kinds = Counter(
        "shutdown" if i.scope_type == "vantage" else ("blocked" if i.blocked else "unreachable") for i in top
    )
    techniques = Counter(i.technique for i in top)
    return {
        "incidents": len(top),
        "open": sum(1 for i in top if i.open),
        "closed": sum(1 for i in top if not i.open),
        "shutdowns": kinds.get("shutdown", 0),
        "blocked": kinds.get("blocked", 0),
        "unreachable": kinds.get("unreachable", 0),
        "patterns": len(arranged.patterns),
        "targets_affected": len(
            {t for i in arranged.incidents if i.scope_type == "target" for t in [i.scope]}
        ),
        "by_technique": dict(sorted(techniques.items())),
    }


def _sections(functions: list[Any], *args: Any) -> list[dict[str, Any]]:
    out = []
    for fn in functions:
        try:
            found = fn(*args)
        except Exception as exc:  # another feature's bug must not cost the report
            name = getattr(fn, "__name__", "section")
            found = section(name, name, [f"This section could not be produced: {type(exc).__name__}."])
        if found is not None:
            out.append(found)
    return out


def method(config: Config) -> list[str]:
    """The method in two paragraphs, with this vantage's own numbers."""
    v, c = config.vantage, config.confirmation
    where = ", ".join(x for x in (v.city, v.country) if x) or "the vantage"
    network = (
        " on " + " ".join(x for x in (v.isp, f"({v.asn})" if v.asn else "") if x) if v.isp or v.asn else ""
    )
    domestic, international = len(config.controls.domestic), len(config.controls.international)
    references = len(config.reference_vantages)
    every, controls_every = _span(config.defaults.interval), _span(config.scheduler.controls_interval)
    first = (
        f"From {where}{network}, reachwatch attempted each target every {every} (with random jitter) and "
        f"its controls every {controls_every}, speaking each target's real protocol (TCP, TLS, HTTP, DNS, "
        "Tor, VPN and proxy handshakes, data through the tunnel) and recording every attempt with the stage "
        "where it failed and what it saw: certificates, resolver answers, pages, bytes moved. "
        f"{domestic} domestic and {international} international "
        f"{'control' if domestic + international == 1 else 'controls'} (sites expected to answer from the "
        "vantage) tell a blocked target from the vantage's own outage: when every international control "
        "fails while a domestic one answers the vantage is in an international shutdown, when all fail "
        "it is offline, and meanwhile no target is called blocked."
    )
    second = (
        f"A target's verdict changes only when {c.required} of its last {c.attempts} attempts agree. It is "
        "called blocked only with evidence: seen locally (a substituted certificate, DNS answers that differ "
        "from DNS-over-HTTPS, a block page, a throttled or cut transfer) or through a reference vantage "
        f"outside the country ({references} configured) that reached the same target at the same time; "
        "without evidence a failure is 'unreachable'. An incident begins at the first failed attempt after "
        "the last good one (the change happened in between: the uncertainty shown) and ends at the first "
        "good attempt after the last failed one. Times are local (the vantage's time zone, with the UTC "
        "offset). The attached JSONL holds the attempts and decisions behind each incident."
    )
    return [first, second]


def _span(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


# --- the attachment ----------------------------------------------------------------------------------


def _windows(
    arranged: Arranged, since: float, until: float
) -> Iterator[tuple[list[str] | None, float, float]]:
    """(targets, from, to) per incident: its targets' attempts (None: the controls') across its span."""
    for incident in arranged.incidents:
        if incident.members:
            continue  # its members have their own windows
        start = incident.start.after if incident.start.after is not None else incident.start.by
        end = incident.end.by if incident.end is not None else until
        targets = None if incident.scope_type == "vantage" else [incident.scope]
        yield targets, max(start, since - 86400.0), end


def _raw_lines(context: ReportContext, max_rows: int, stats: ReadStats) -> tuple[list[str], bool]:
    conn, since, until, is_private = context.conn, context.since, context.until, context.is_private
    lines: list[str] = []
    for change in journal.vantage_changes(conn, since, until, stats):
        lines.append(_line("vantage_change", change.to_dict()))
    for vchange in journal.verdict_changes(conn, since, until, stats):
        record = vchange.to_dict()
        if is_private(vchange.target):
            record["facts"], record["compared"] = {}, {}
            if record["reference"] is not None:
                record["reference"].update(facts={}, destination=None)
        lines.append(_line("verdict_change", record))
    controls = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT target FROM results WHERE role = 'international_control' AND started_at >= ?"
            " AND started_at < ?",
            (since, until),
        )
    ]
    seen: set[tuple[str, float]] = set()
    for targets, start, end in _windows(context.arranged, since, until):
        for target in targets if targets is not None else controls:
            for row in journal.target_rows(conn, target, start, end + 1e-3, stats):
                key = (target, row.result.started_at)
                if key in seen:
                    continue
                seen.add(key)
                record = row.to_dict()
                if is_private(target):
                    record["facts"] = {}
                lines.append(_line("attempt", record))
                if len(lines) >= max_rows:
                    return lines, True
    return lines, False


def _line(kind: str, record: dict[str, Any]) -> str:
    return json.dumps({"record": kind, **record}, sort_keys=True, default=str) + "\n"


def write_attachment(report: Report, path: Path) -> None:
    path.write_text(report.attachment.text, encoding="utf-8")
