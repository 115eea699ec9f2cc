"""Incidents as terminal text: ``reachwatch incidents`` (a table) and ``reachwatch incidents show ID``.

Renders the documents of ``incident_view`` only (the API serves the same as JSON). Times are the
vantage's local time with its UTC offset; the start is the first bad attempt and the window before it
(back to the last good attempt) is its uncertainty.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# facts worth a line of their own in ``show``, in this order; any other fact follows
EVIDENCE_FACTS = (
    "tls_issuer",
    "tls_leaf_issuer",
    "tls_subject",
    "tls_spki_sha256",
    "answers_system",
    "status",
    "http_status",
    "blockpage_fingerprint",
    "body_sha256",
    "excerpt_sha256",
    "bytes_moved",
    "cut_after_bytes",
    "cut_after_s",
    "transfer_goal_bytes",
    "throughput_bps",
    "control_throughput_bps",
    "throughput_ratio",
    "neutral_sni_handshake",
)


def fact_order(facts: dict[str, Any]) -> list[str]:
    """The keys of ``facts`` as every incident view lists them (terminal, Markdown, HTML): the evidence
    facts first in ``EVIDENCE_FACTS`` order, then the rest alphabetically."""
    return [k for k in EVIDENCE_FACTS if k in facts] + sorted(k for k in facts if k not in EVIDENCE_FACTS)


# parts of a technique or state name that are acronyms, written as a reader knows them
_ACRONYMS = {"dns": "DNS", "tls": "TLS", "tcp": "TCP", "http": "HTTP", "sni": "SNI"}


def words(code: str) -> str:
    """A technique, verdict or state code as words for a reader: ``tls_interference`` -> ``TLS
    interference`` (the code itself stays in the JSON and the raw data)."""
    return " ".join(_ACRONYMS.get(part, part) for part in code.split("_"))


def count(n: int, one: str, many: str | None = None) -> str:
    """``1 incident``, ``3 incidents``: reports are read by people, not parsed ("incident(s)")."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def duration(seconds: float | None) -> str:
    """``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s % 60 and s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def short_time(local: str | None) -> str:
    """``2022-01-05 18:02 +06`` from ``2022-01-05 18:02:00 +06`` (seconds matter little in a table)."""
    if local is None:
        return "-"
    day_time, _, offset = local.rpartition(" ")
    return f"{day_time[:-3]} {offset}"


def scope_text(doc: dict[str, Any]) -> str:
    if doc["scope_type"] == "target":
        return str(doc["scope"])
    if doc["scope_type"] == "vantage":
        return f"vantage {doc['scope']}"
    return f"{doc['scope_type']} {doc['scope']} ({len(doc['targets'])} targets)"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def listing(doc: dict[str, Any]) -> list[str]:
    """The table of ``reachwatch incidents``: incidents (open first), then recurring patterns."""
    lines = [f"incidents at {doc['vantage']} (times in {doc['timezone']}; start = first bad attempt,"]
    lines.append(" within = since the last good attempt)")
    rows = [
        ["ID", "STATUS", "SCOPE", "TECHNIQUE", "START", "WITHIN", "END", "DURATION", "ATTEMPTS", "PATTERN"]
    ]
    for inc in doc["incidents"]:
        end = inc["end"]
        rows.append(
            [
                inc["id"],
                inc["status"],
                scope_text(inc),
                inc["technique"],
                short_time(inc["start"]["local"]),
                duration(inc["start"]["uncertainty_s"]) if inc["start"]["after"] is not None else "?",
                short_time(end["local"]) if end else "-",
                duration(inc["duration_s"]) + ("+" if end is None else ""),
                str(inc["attempts"]),
                inc["pattern"] or "-",
            ]
        )
    lines += _table(rows) if len(rows) > 1 else ["no incidents"]
    if doc["patterns"]:
        lines += ["", "recurring patterns (one line stands for its incidents; reachwatch incidents show ID)"]
        prow = [["ID", "STATUS", "SCOPE", "TECHNIQUE", "SCHEDULE", "WEEKDAYS", "INCIDENTS"]]
        for pat in doc["patterns"]:
            sched = pat["schedule"]
            prow.append(
                [
                    pat["id"],
                    pat["status"],
                    pat["scope"] if pat["scope_type"] == "target" else f"{pat['scope_type']} {pat['scope']}",
                    pat["technique"],
                    sched["text"],
                    ",".join(sched["weekdays"]),
                    str(len(pat["incidents"])),
                ]
            )
        lines += _table(prow)
    return lines


def _facts(facts: dict[str, Any]) -> Iterable[str]:
    for key in fact_order(facts):
        yield f"        {key}: {facts[key]}"


def details(doc: dict[str, Any]) -> list[str]:
    """``reachwatch incidents show ID``: one incident with its evidence, or one pattern."""
    if "pattern" in doc:
        pat = doc["pattern"]
        lines = [f"pattern {pat['id']}: {pat['scope_type']} {pat['scope']}, {pat['technique']}"]
        lines.append(f"  schedule: {pat['schedule']['text']} ({', '.join(pat['schedule']['weekdays'])})")
        lines.append(f"  typical duration: {duration(pat['schedule']['typical_duration_s'])}")
        lines.append(f"  days: {', '.join(pat['days'])}")
        for inc in doc["incidents"]:
            lines.append(f"  {inc['id']}  {short_time(inc['start']['local'])}  {duration(inc['duration_s'])}")
        return lines
    inc = doc["incident"]
    lines = _incident_lines(inc)
    for member in inc.get("member_incidents", []):
        lines += ["", *_incident_lines(member)]
    return lines


def _incident_lines(inc: dict[str, Any]) -> list[str]:
    start, end = inc["start"], inc["end"]
    lines = [f"incident {inc['id']}: {scope_text(inc)} [{inc['status']}]"]
    if inc["scope_type"] == "target":
        lines.append(f"  kind {inc['kind']}, group {inc['group']}" + (" (private)" if inc["private"] else ""))
    lines.append(f"  verdicts: {', '.join(inc['verdicts'])}; technique: {inc['technique']}")
    lines.append(
        f"  start: {start['local']} (first bad attempt); last good attempt: {start['after_local'] or 'none'}"
    )
    if end is not None:
        lines.append(f"  end:   {end['local']} (first good attempt); last bad attempt: {end['after_local']}")
    lines.append(f"  duration: {duration(inc['duration_s'])}{'' if end else ' so far'}")
    lines.append(f"  attempts: {inc['attempts']} ({inc['failed_attempts']} failed)")
    if inc["targets"]:
        lines.append(f"  targets: {', '.join(inc['targets'])}")
    if inc["pattern"]:
        lines.append(f"  part of recurring pattern {inc['pattern']}")
    for evidence in inc["evidence"]:
        lines.append(f"  evidence: {evidence['technique']}")
        for ex in evidence["examples"]:
            lines.append(
                f"    attempt {ex['started_at_local']}: {ex['failure'] or 'ok'} at {ex['stage'] or '-'}"
            )
            lines += _facts(ex["facts"])
    for change in inc["verdict_changes"]:
        what = change["verdict"] + (f"/{change['technique']}" if change["technique"] else "")
        lines.append(f"  verdict {change['previous_verdict']} -> {what} at {change['at_local']}")
        if change.get("compared"):
            lines.append("    compared:")
            lines += _facts(change["compared"])
        ref = change.get("reference")
        if ref:
            outcome = "reached it" if ref["success"] else f"failed ({ref['failure']})"
            lines.append(
                f"    relied on reference {ref['reference']}: {outcome},"
                f" its attempt at {ref['observed_at_local']}"
            )
            lines += _facts(ref["facts"])
    for phase in inc["phases"]:
        lines.append(
            f"  vantage {phase['previous']} -> {phase['state']} at {phase['at_local']}: {phase['reason']}"
        )
        for c in phase["controls"]:
            ok = "ok" if c["success"] else (c["failure"] or "no result")
            lines.append(f"    {c['role']} control {c['name']}: {ok}")
    return lines
