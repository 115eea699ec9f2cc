"""The report as one self-contained HTML file: no script, no external resource, pictures inline (SVG),
the raw data as an embedded download (gzip, base64 data URI). Renders ``report.Report.doc`` only.

Reading order is the reader's: who measured and when, what happened (summary table), recurring patterns
(one entry with its schedule rather than every evening), each incident with its timeline picture and
its evidence, other features' sections, the method, the data. Every value from the journal is escaped:
a block page's title or a certificate issuer chosen by a censor is text, never markup.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Callable, Iterable
from html import escape
from typing import Any

from reachwatch.failures import Technique
from reachwatch.incident_text import count, duration, fact_order, short_time, words
from reachwatch.report import Report

MAX_PICTURES = 60  # a picture per scope up to this many; beyond, the tables carry the times
MAX_OCCURRENCES = 60
TECHNIQUES = frozenset(t.value for t in Technique)

CSS = """
:root { color-scheme: light; --fg: #1d2329; --muted: #5c6670; --line: #d7dde3; --bg2: #f4f6f8;
        --bad: #b03a2e; --warn: #b9770e; --ok: #1e8449; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif;
       color: var(--fg); margin: 0; padding: 2rem 1rem 4rem; }
main { max-width: 70rem; margin: 0 auto; }
h1 { font-size: 1.7rem; margin: 0 0 .3rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 .6rem; padding-bottom: .25rem;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 1.1rem; margin: 1.6rem 0 .4rem; }
h4 { font-size: .95rem; margin: 1rem 0 .3rem; color: var(--muted); text-transform: uppercase;
     letter-spacing: .03em; }
p.meta, .muted { color: var(--muted); }
dl.identity { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .8rem 0; }
dl.identity dt { color: var(--muted); }
dl.identity dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { text-align: left; vertical-align: top; padding: .35rem .5rem; border-bottom: 1px solid var(--line); }
th { background: var(--bg2); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.id { white-space: nowrap; font-family: ui-monospace, monospace; font-size: .78rem; color: var(--muted); }
td code, dd code, p code { font-size: .85em; word-break: break-all; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: .7rem; font-size: .8rem; font-weight: 600;
         color: #fff; background: var(--muted); white-space: nowrap; }
.badge.blocked { background: var(--bad); } .badge.shutdown { background: var(--warn); }
.badge.open { background: var(--bad); } .badge.closed { background: var(--ok); }
article { border: 1px solid var(--line); border-radius: .5rem; padding: .2rem 1.1rem 1rem; margin: 1rem 0; }
article h3 { margin-top: .9rem; }
figure { margin: .6rem 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
.facts td:first-child { color: var(--muted); white-space: nowrap; width: 14rem; }
.download { display: inline-block; padding: .45rem .9rem; border: 1px solid var(--fg); border-radius: .4rem;
            color: var(--fg); text-decoration: none; font-weight: 600; }
details { margin: .4rem 0; } summary { cursor: pointer; color: var(--muted); }
footer { margin-top: 3rem; font-size: .85rem; color: var(--muted); }
@media print { body { padding: 0; } article { break-inside: avoid; } .download { display: none; } }
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _what(inc: dict[str, Any]) -> str:
    if inc["scope_type"] == "vantage":
        return '<span class="badge shutdown">shutdown</span> ' + _e(", ".join(map(words, inc["verdicts"])))
    if inc["blocked"]:
        return f'<span class="badge blocked">blocked</span> {_e(words(inc["technique"]))}'
    return '<span class="badge">unreachable</span> no evidence of blocking'


def _scope(inc: dict[str, Any]) -> str:
    if inc["scope_type"] == "target":
        return f"{_e(inc['scope'])} <span class='muted'>({_e(inc['kind'])})</span>"
    if inc["scope_type"] == "vantage":
        return f"the vantage <b>{_e(inc['scope'])}</b>"
    count = f"<span class='muted'>({len(inc['targets'])} targets)</span>"
    return f"{_e(inc['scope_type'])} <b>{_e(inc['scope'])}</b> {count}"


def _window(seconds: float | None, after: float | None) -> str:
    return "start of record" if after is None else f"&le; {_e(duration(seconds))}"


def _table(head: list[str], rows: Iterable[list[str]], classes: list[str] | None = None) -> str:
    cls = classes or [""] * len(head)
    out = ["<table><thead><tr>", *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        cells = (f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for v, c in zip(row, cls, strict=True))
        out += ["<tr>", *cells, "</tr>"]
    out.append("</tbody></table>")
    return "".join(out)


def _fact_value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(f"<code>{_e(v)}</code>" for v in value) or "(none)"
    if isinstance(value, float):
        return _e(f"{value:,.3f}".rstrip("0").rstrip("."))
    return f"<code>{_e(value)}</code>" if isinstance(value, str) else _e(value)


def _facts(facts: dict[str, Any]) -> str:
    if not facts:
        return ""
    keys = fact_order(facts)
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_fact_value(facts[k])}</td></tr>" for k in keys)
    return f'<table class="facts"><tbody>{rows}</tbody></table>'


def _summary(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    parts = [
        f"<p><b>{_e(count(s['incidents'], 'incident'))}</b> in the period: "
        f"<b>{_e(count(s['shutdowns'], 'shutdown'))}</b>, "
        f"<b>{_e(count(s['blocked'], 'block'))}</b> with evidence, "
        f"<b>{_e(count(s['unreachable'], 'outage'))}</b> without evidence of blocking; "
        f"<b>{s['open']}</b> still open at the end of the period; "
        f"<b>{_e(count(s['patterns'], 'recurring pattern'))}</b>; "
        f"{_e(count(s['targets_affected'], 'target'))} affected.</p>"
    ]
    if not doc["incidents"]:
        parts.append("<p>No incident in this period.</p>")
        return "".join(parts)
    rows = []
    for inc in doc["incidents"]:
        end = inc["end"]
        anchor = inc["pattern"] if inc["pattern"] else inc["id"]
        rows.append(
            [
                f'<a href="#{_e(anchor)}">{_scope(inc)}</a>',
                _what(inc),
                _e(short_time(inc["start"]["local"])),
                _window(inc["start"]["uncertainty_s"], inc["start"]["after"]),
                _e(short_time(end["local"])) if end else '<span class="badge open">open</span>',
                _e(duration(inc["duration_s"])) + ("" if end else "+"),
                _e(inc["attempts"]),
                _e(inc["id"]),
            ]
        )
    head = ["Scope", "What", "Start (local)", "Window", "End (local)", "Duration", "Attempts", "Incident"]
    parts.append(_table(head, rows, ["", "", "time", "time", "time", "num", "num", "id"]))
    parts.append(
        '<p class="muted">Start: the first failed attempt. Window: how precisely the start is known, the '
        "time back to the last good attempt before it (attempts are minutes apart, so the incident began "
        "somewhere in that window). Attempts: measurements taken during the incident.</p>"
    )
    return "".join(parts)


def _pattern(pat: dict[str, Any], incidents: dict[str, dict[str, Any]], picture: str) -> str:
    sched = pat["schedule"]
    scope = pat["scope"] if pat["scope_type"] == "target" else f"{pat['scope_type']} {pat['scope']}"
    rows = []
    for ident in pat["incidents"][:MAX_OCCURRENCES]:
        inc = incidents.get(ident)
        if inc is None:
            continue
        end = inc["end"]
        rows.append(
            [
                _e(short_time(inc["start"]["local"])),
                _e(short_time(end["local"])) if end else '<span class="badge open">open</span>',
                _e(duration(inc["duration_s"])),
                _e(words(inc["technique"])),
                _e(inc["attempts"]),
            ]
        )
    days = ", ".join(sched["weekdays"])
    return (
        f'<article id="{_e(pat["id"])}"><h3>Recurring: {_e(scope)}, daily {_e(sched["start_local"])}'
        f'&ndash;{_e(sched["end_local"])} <span class="muted">({_e(sched["timezone"])})</span></h3>'
        f"<p>{len(pat['incidents'])} incidents on {len(pat['days'])} days ({_e(days)}), typically "
        f"{_e(duration(sched['typical_duration_s']))} from about {_e(sched['start_local'])} local time; "
        f"technique: {_e(words(pat['technique']))}. Pattern <code>{_e(pat['id'])}</code>.</p>"
        f"{picture}"
        + _table(
            ["Start (local)", "End (local)", "Duration", "Technique", "Attempts"],
            rows,
            ["time", "time", "num", "", "num"],
        )
        + _occurrence_evidence([incidents[i] for i in pat["incidents"] if i in incidents])
        + "</article>"
    )


def _occurrence_evidence(occurrences: list[dict[str, Any]]) -> str:
    """The latest occurrence's evidence shown, the earlier ones folded (no script: ``<details>``)."""
    if not occurrences:
        return ""
    ordered = sorted(occurrences, key=lambda i: i["start"]["at"])
    latest, earlier = ordered[-1], ordered[:-1][-MAX_OCCURRENCES:]
    out = [f"<h4>Evidence of the latest occurrence ({_e(short_time(latest['start']['local']))})</h4>"]
    out.append(_occurrence(latest))
    for inc in reversed(earlier):
        when = _e(short_time(inc["start"]["local"]))
        out.append(
            f"<details><summary>Evidence of the occurrence of {when}</summary>{_occurrence(inc)}</details>"
        )
    return "".join(out)


def _occurrence(inc: dict[str, Any]) -> str:
    parts = [_evidence(inc)]
    for member in inc.get("member_incidents") or []:
        parts.append(f"<p><b>{_e(member['scope'])}</b> ({_e(member['kind'])})</p>{_evidence(member)}")
    return "".join(parts)


def _incident(inc: dict[str, Any], picture: str) -> str:
    start, end = inc["start"], inc["end"]
    out = [
        f'<article id="{_e(inc["id"])}"><h3>{_scope(inc)} &mdash; {_what(inc)} '
        f'<span class="badge {_e(inc["status"])}">{_e(inc["status"])}</span></h3>',
        picture,
        '<dl class="identity">',
        f"<dt>Started</dt><dd>{_e(start['local'])} (first failed attempt)",
        f"; the last good attempt was {_e(start['after_local'])}</dd>"
        if start["after"] is not None
        else "; blocked since the record starts</dd>",
    ]
    if end is not None:
        out.append(
            f"<dt>Ended</dt><dd>{_e(end['local'])} (first good attempt); the last failed attempt was "
            f"{_e(end['after_local'])}</dd>"
        )
    else:
        out.append("<dt>Ended</dt><dd>still open at the end of the period</dd>")
    out += [
        f"<dt>Duration</dt><dd>{_e(duration(inc['duration_s']))}{'' if end else ' so far'}</dd>",
        f"<dt>Attempts</dt><dd>{_e(inc['attempts'])} ({_e(inc['failed_attempts'])} failed)</dd>",
        f"<dt>Incident</dt><dd><code>{_e(inc['id'])}</code>"
        + (
            f", part of pattern <a href='#{_e(inc['pattern'])}'>{_e(inc['pattern'])}</a>"
            if inc["pattern"]
            else ""
        )
        + "</dd></dl>",
    ]
    if inc.get("private"):
        out.append("<p class='muted'>A private target: shown by name only, without addresses or facts.</p>")
    out.append(_evidence(inc))
    members = inc.get("member_incidents") or []
    if members:
        out.append("<h4>Targets</h4>")
        rows = [
            [
                _e(m["scope"]),
                _e(m["kind"]),
                _what(m),
                _e(short_time(m["start"]["local"])),
                _e(short_time(m["end"]["local"])) if m["end"] else '<span class="badge open">open</span>',
                _e(m["attempts"]),
            ]
            for m in members
        ]
        out.append(
            _table(
                ["Target", "Kind", "What", "Start", "End", "Attempts"],
                rows,
                ["", "", "", "time", "time", "num"],
            )
        )
        for m in members:
            ev = _evidence(m)
            if ev:
                out.append(f"<h4>Evidence: {_e(m['scope'])}</h4>{ev}")
    for sec in inc.get("sections") or []:
        out.append(_section(sec, level=4))
    out.append("</article>")
    return "".join(out)


def _evidence(inc: dict[str, Any]) -> str:
    out = []
    for ev in inc["evidence"]:
        key = words(ev["technique"])
        title = f"Evidence ({key})" if ev["technique"] in TECHNIQUES else f"Failure seen ({key})"
        for n, ex in enumerate(ev["examples"]):
            which = "first" if n == 0 else "latest"
            failure = f"{ex['failure'] or 'succeeded'} at {ex['stage'] or '-'}"
            local = ex["local_evidence"]
            seen = f"; the probe itself saw {words(local)}" if local else ""
            out.append(
                f"<h4>{_e(title)}, {which} attempt</h4>"
                f"<p>{_e(ex['started_at_local'])}: {_e(failure)}{_e(seen)}</p>{_facts(ex['facts'])}"
            )
    for change in inc["verdict_changes"]:
        technique = change["technique"]
        what = change["verdict"] + (f" ({words(technique)})" if technique else "")
        why = (
            " (the vantage was not online: targets are not judged then)"
            if change["verdict"] == "unknown"
            else ""
        )
        compared = change.get("compared") or {}
        out.append(
            f"<h4>Verdict change</h4><p>{_e(change['at_local'])}: {_e(change['previous_verdict'])} &rarr; "
            f"{_e(what)}{_e(why)}</p>"
            + (f"<p class='muted'>Figures the verdict compared:</p>{_facts(compared)}" if compared else "")
        )
        ref = change.get("reference")
        if ref:
            outcome = "reached the target" if ref["success"] else f"failed too ({ref['failure']})"
            out.append(
                f"<p>Relied on the reference vantage <b>{_e(ref['reference'])}</b> outside the country, "
                f"which {_e(outcome)} in its attempt at {_e(ref['observed_at_local'])}.</p>"
                + _facts(ref["facts"])
            )
    if inc["phases"]:
        rows = []
        for phase in inc["phases"]:
            controls = "; ".join(
                f"{c['role']} {c['name']}: {'ok' if c['success'] else (c['failure'] or 'no result')}"
                for c in phase["controls"]
            )
            rows.append(
                [
                    _e(phase["at_local"]),
                    _e(words(phase["state"])),
                    _e(phase["reason"]),
                    _e(controls),
                ]
            )
        out.append("<h4>Vantage state and the controls that decided it</h4>")
        out.append(_table(["When (local)", "State", "Why", "Controls"], rows, ["time", "", "", ""]))
    return "".join(out)


def _section(sec: dict[str, Any], level: int = 2) -> str:
    out = [f"<h{level}>{_e(sec['title'])}</h{level}>", *(f"<p>{_e(p)}</p>" for p in sec["paragraphs"])]
    table = sec.get("table")
    if table:
        out.append(_table([_e(c) for c in table["columns"]], ([_e(v) for v in row] for row in table["rows"])))
    return "".join(out)


def render(report: Report, picture: Callable[[str, dict[str, Any]], str] | None = None) -> str:
    """The HTML text. ``picture(title, incident_or_pattern_doc)`` gives a figure's markup ('' for none)."""
    doc = report.doc
    v = doc["vantage"]
    draw = picture or (lambda _t, _d: "")
    by_id = {i["id"]: i for i in doc["incidents"]}
    in_pattern = {ident for p in doc["patterns"] for ident in p["incidents"]}
    pictures = 0

    def figure(title: str, item: dict[str, Any]) -> str:
        nonlocal pictures
        if pictures >= MAX_PICTURES:
            return ""
        pictures += 1
        return draw(title, item)

    identity = "".join(
        f"<dt>{label}</dt><dd>{_e(v[key])}</dd>"
        for label, key in (
            ("Vantage", "name"),
            ("Country", "country"),
            ("Network (ASN)", "asn"),
            ("ISP", "isp"),
            ("City", "city"),
        )
        if v.get(key)
    )
    period = doc["period"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(doc['title'])}</title><style>{CSS}</style></head><body><main>",
        f"<header><h1>{_e(doc['title'])}</h1>",
        f"<p class='meta'>{_e(short_time(period['since_local']))} to {_e(short_time(period['until_local']))}"
        f" ({_e(doc['timezone'])}); UTC {_e(period['since_utc'])} to {_e(period['until_utc'])}. "
        f"Generated {_e(doc['generated_at_utc'])} by reachwatch {_e(doc['reachwatch_version'])}.</p>",
        f"<dl class='identity'>{identity}<dt>Times</dt><dd>local time of the vantage ({_e(doc['timezone'])}),"
        " with the UTC offset</dd></dl></header>",
        "<section id='summary'><h2>Summary</h2>",
        _summary(doc),
        "</section>",
    ]
    if doc["patterns"]:
        parts.append("<section id='patterns'><h2>Recurring patterns</h2>")
        parts.append(
            "<p>The same scope blocked at about the same local time on several days: one entry "
            "with its schedule and its occurrences.</p>"
        )
        for pat in doc["patterns"]:
            members = [by_id[i] for i in pat["incidents"] if i in by_id]
            drawn = figure(f"{pat['scope']}: recurring", {"recurring": pat, "occurrences": members})
            parts.append(_pattern(pat, by_id, drawn))
        parts.append("</section>")
    singles = [i for i in doc["incidents"] if i["id"] not in in_pattern]
    parts.append("<section id='incidents'><h2>Incidents</h2>")
    if not singles:
        parts.append(
            "<p>Every incident of the period belongs to a recurring pattern above.</p>"
            if doc["incidents"]
            else "<p>No incident in this period.</p>"
        )
    for inc in singles:
        parts.append(_incident(inc, figure(inc["scope"], inc)))
    parts.append("</section>")
    for sec in doc["sections"]:
        parts.append(f"<section id='{_e(sec['id'])}'>{_section(sec)}</section>")
    parts.append("<section id='method'><h2>Method</h2>")
    parts += [f"<p>{_e(p)}</p>" for p in doc["method"]]
    parts.append("</section>")
    att = doc["attachment"]
    payload = base64.b64encode(gzip.compress(report.attachment.text.encode(), mtime=0)).decode()
    parts += [
        "<section id='data'><h2>Data</h2>",
        f"<p>The attempts and decisions behind these incidents: {_e(att['rows'])} JSON lines"
        f"{' (truncated: reachwatch export has the rest)' if att['truncated'] else ''}, SHA-256 "
        f"<code>{_e(att['sha256'])}</code> (of the uncompressed file).</p>",
        f"<p><a class='download' download='{_e(att['name'])}.gz' "
        f"href='data:application/gzip;base64,{payload}'>Download {_e(att['name'])}.gz</a></p></section>",
        "<footer>Private targets are named only; their addresses and observations are not published. "
        "The vantage's address is never part of a report.</footer></main></body></html>",
    ]
    return "".join(parts) + "\n"
