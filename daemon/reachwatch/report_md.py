"""The report as Markdown (no pictures: those are in the HTML report, which needs matplotlib; this one
does not). Renders ``report.Report.doc``; the raw data is a ``.jsonl`` file written beside it, named
and hashed in the "Data" section. Table cells are escaped (``|`` and line breaks) so a block page title
or a certificate issuer cannot break the table.
"""

from __future__ import annotations

from typing import Any

from reachwatch.incident_text import count, duration, fact_order, short_time, words
from reachwatch.report import Report


def _c(value: Any) -> str:
    """One table cell: no pipe, no line break, backslashes kept."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(_c(v) for v in row) + " |" for row in rows]
    return [*out, ""]


def _what(inc: dict[str, Any]) -> str:
    if inc["scope_type"] == "vantage":
        return "shutdown: " + ", ".join(map(words, inc["verdicts"]))
    if inc["blocked"]:
        return "blocked: " + words(str(inc["technique"]))
    return "unreachable (no evidence of blocking)"


def _scope(inc: dict[str, Any]) -> str:
    if inc["scope_type"] == "target":
        return f"{inc['scope']} ({inc['kind']})"
    if inc["scope_type"] == "vantage":
        return f"vantage {inc['scope']}"
    return f"{inc['scope_type']} {inc['scope']} ({len(inc['targets'])} targets)"


def _facts(facts: dict[str, Any]) -> list[str]:
    if not facts:
        return []
    keys = fact_order(facts)
    return _table(["fact", "value"], [[k, facts[k]] for k in keys])


def _incident(inc: dict[str, Any]) -> list[str]:
    start, end = inc["start"], inc["end"]
    out = [f"### {_scope(inc)}: {_what(inc)} ({inc['status']})", ""]
    began = f"{start['local']} (first failed attempt)"
    began += (
        f"; last good attempt {start['after_local']}"
        if start["after"] is not None
        else "; since the record starts"
    )
    out.append(f"- Started: {began}")
    if end is not None:
        out.append(f"- Ended: {end['local']} (first good attempt); last failed attempt {end['after_local']}")
    else:
        out.append("- Ended: still open at the end of the period")
    out.append(f"- Duration: {duration(inc['duration_s'])}{'' if end else ' so far'}")
    out.append(f"- Attempts: {inc['attempts']} ({inc['failed_attempts']} failed)")
    out.append(
        f"- Incident: `{inc['id']}`" + (f", part of pattern `{inc['pattern']}`" if inc["pattern"] else "")
    )
    if inc.get("private"):
        out.append("- A private target: shown by name only, without addresses or facts.")
    out.append("")
    out += _evidence(inc)
    for member in inc.get("member_incidents") or []:
        out += [f"#### {_scope(member)}: {_what(member)}", ""]
        out.append(
            f"- {short_time(member['start']['local'])} to "
            f"{short_time(member['end']['local']) if member['end'] else 'open'}, "
            f"{member['attempts']} attempts"
        )
        out.append("")
        out += _evidence(member)
    for sec in inc.get("sections") or []:
        out += _section(sec, "####")
    return out


def _evidence(inc: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for ev in inc["evidence"]:
        for n, ex in enumerate(ev["examples"]):
            which = "first" if n == 0 else "latest"
            seen = f"; the probe itself saw {ex['local_evidence']}" if ex["local_evidence"] else ""
            out += [
                f"Evidence ({ev['technique']}), {which} attempt, {ex['started_at_local']}: "
                f"{ex['failure'] or 'succeeded'} at {ex['stage'] or '-'}{seen}",
                "",
                *_facts(ex["facts"]),
            ]
    for change in inc["verdict_changes"]:
        what = change["verdict"] + (f" ({change['technique']})" if change["technique"] else "")
        out += [f"Verdict change {change['at_local']}: {change['previous_verdict']} -> {what}", ""]
        out += _facts(change.get("compared") or {})
        ref = change.get("reference")
        if ref:
            outcome = "reached the target" if ref["success"] else f"failed too ({ref['failure']})"
            out += [
                f"Relied on the reference vantage {ref['reference']} outside the country, which {outcome} "
                f"in its attempt at {ref['observed_at_local']}.",
                "",
                *_facts(ref["facts"]),
            ]
    if inc["phases"]:
        rows = [
            [
                p["at_local"],
                p["state"],
                p["reason"],
                "; ".join(
                    f"{c['role']} {c['name']}: {'ok' if c['success'] else (c['failure'] or 'no result')}"
                    for c in p["controls"]
                ),
            ]
            for p in inc["phases"]
        ]
        out += _table(["when (local)", "state", "why", "controls"], rows)
    return out


def _section(sec: dict[str, Any], heading: str = "##") -> list[str]:
    out = [f"{heading} {sec['title']}", ""]
    for paragraph in sec["paragraphs"]:
        out += [paragraph, ""]
    table = sec.get("table")
    if table:
        out += _table(list(table["columns"]), [list(r) for r in table["rows"]])
    return out


def render(report: Report) -> str:
    doc = report.doc
    v, period, s = doc["vantage"], doc["period"], doc["summary"]
    out = [f"# {doc['title']}", ""]
    identity = [
        f"{label}: {v[key]}"
        for label, key in (
            ("Vantage", "name"),
            ("Country", "country"),
            ("Network (ASN)", "asn"),
            ("ISP", "isp"),
            ("City", "city"),
        )
        if v.get(key)
    ]
    out += [f"- {line}" for line in identity]
    out += [
        f"- Period: {period['since_local']} to {period['until_local']} ({doc['timezone']}); "
        f"UTC {period['since_utc']} to {period['until_utc']}",
        f"- Generated {doc['generated_at_utc']} by reachwatch {doc['reachwatch_version']}; times are the "
        "vantage's local time with the UTC offset",
        "",
        "## Summary",
        "",
        f"{count(s['incidents'], 'incident')}: {count(s['shutdowns'], 'shutdown')}, "
        f"{count(s['blocked'], 'block')} with evidence, {count(s['unreachable'], 'outage')} without evidence "
        f"of blocking; {s['open']} still open at the end of the period; "
        f"{count(s['patterns'], 'recurring pattern')}; {count(s['targets_affected'], 'target')} affected.",
        "",
    ]
    rows = [
        [
            inc["id"],
            _scope(inc),
            _what(inc),
            short_time(inc["start"]["local"]),
            "start of record"
            if inc["start"]["after"] is None
            else f"<= {duration(inc['start']['uncertainty_s'])}",
            short_time(inc["end"]["local"]) if inc["end"] else "open",
            duration(inc["duration_s"]) + ("" if inc["end"] else "+"),
            inc["attempts"],
        ]
        for inc in doc["incidents"]
    ]
    if rows:
        out += _table(
            ["incident", "scope", "what", "start", "start window", "end", "duration", "attempts"], rows
        )
    if doc["patterns"]:
        out += ["## Recurring patterns", ""]
        prow = [
            [
                p["id"],
                p["scope"] if p["scope_type"] == "target" else f"{p['scope_type']} {p['scope']}",
                f"{p['schedule']['start_local']}-{p['schedule']['end_local']} {p['schedule']['timezone']}",
                ", ".join(p["schedule"]["weekdays"]),
                len(p["days"]),
                len(p["incidents"]),
                p["technique"],
            ]
            for p in doc["patterns"]
        ]
        out += _table(["pattern", "scope", "daily", "weekdays", "days", "incidents", "technique"], prow)
    in_pattern = {i for p in doc["patterns"] for i in p["incidents"]}
    out += ["## Incidents", ""]
    singles = [inc for inc in doc["incidents"] if inc["id"] not in in_pattern]
    if not singles:
        out += [
            "Every incident of the period belongs to a recurring pattern above."
            if doc["incidents"]
            else "No incident in this period.",
            "",
        ]
    for inc in singles:
        out += _incident(inc)
    for sec in doc["sections"]:
        out += _section(sec)
    out += ["## Method", ""]
    for paragraph in doc["method"]:
        out += [paragraph, ""]
    att = doc["attachment"]
    out += [
        "## Data",
        "",
        f"The attempts and decisions behind these incidents: `{att['name']}` beside this file, {att['rows']} "
        f"JSON lines, SHA-256 `{att['sha256']}`"
        + (" (truncated: reachwatch export has the rest)." if att["truncated"] else "."),
        "",
        "Private targets are named only; their addresses and observations are not published. The vantage's "
        "address is never part of a report.",
        "",
    ]
    return "\n".join(out)
