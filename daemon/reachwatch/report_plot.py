"""Timeline pictures for the HTML report: one per scope, drawn with matplotlib (Agg) as inline SVG.

Each picture is a row per target (per member of a roll-up; one row for a shutdown) over the scope's
time span in the vantage's local time. A bar is solid where the incident certainly held (from the first
bad attempt to the last bad one) and hatched where the change happened somewhere inside (from the last
good attempt to the first bad one, and from the last bad to the first good); an open incident ends in an
arrow. The colour names the technique (a shutdown: its state, per phase).

matplotlib is an optional dependency (``reachwatch[report]``): only the HTML report imports this module,
and ``available()`` lets the command say so in one line when it is missing.
"""

from __future__ import annotations

import importlib.util
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from reachwatch.incident_text import words

# no block is green: a reader takes green for "fine"
COLOURS = {
    "tcp_reset": "#c0392b",
    "tcp_blackhole": "#8e44ad",
    "tls_interference": "#d35400",
    "tls_interception": "#a93226",
    "dns_tampering": "#2471a3",
    "http_blockpage": "#b7950b",
    "throttled": "#00838f",
    "protocol_blocking": "#6c3483",
    "flow_cut": "#c2185b",
    "international_shutdown": "#e67e22",
    "offline": "#641e16",
    "none": "#7f8c8d",
}
DEFAULT_COLOUR = "#34495e"
LEGEND = {"none": "unreachable (no evidence of blocking)"}
MAX_ROWS = 40  # rows per picture; a roll-up of more targets shows the first ones and says how many more


def available() -> bool:
    """Whether matplotlib can be imported (the HTML report needs it)."""
    return importlib.util.find_spec("matplotlib") is not None


@dataclass(frozen=True)
class Span:
    """One bar: certain from ``solid_from`` to ``solid_to``, uncertain before and after."""

    after_start: float | None  # last good attempt (None: before the record)
    solid_from: float  # first bad attempt
    solid_to: float  # last bad attempt (open: the newest attempt)
    before_end: float | None  # first good attempt (None: still open, or a phase followed by another)
    technique: str
    open: bool = False  # the incident is still open: the bar ends in an arrow


Row = tuple[str, list[Span]]


def spans_of(doc: dict[str, Any]) -> list[Row]:
    """Rows of a top-level incident document (``incident_view.incident_doc`` with ``member_incidents``)."""
    if doc["scope_type"] == "vantage":
        return [(f"vantage {doc['scope']}", _phase_spans(doc))]
    members = doc.get("member_incidents") or [doc]
    return [(m["scope"], [_span(m, m["technique"])]) for m in members]


def pattern_rows(pattern: dict[str, Any], incidents: list[dict[str, Any]]) -> list[Row]:
    """A recurring pattern: its occurrences side by side on one row."""
    scope = (
        pattern["scope"]
        if pattern["scope_type"] == "target"
        else f"{pattern['scope_type']} {pattern['scope']}"
    )
    spans = [s for inc in incidents for _, row in spans_of(inc) for s in row][: MAX_ROWS * 20]
    if pattern["scope_type"] in (
        "group",
        "kind",
    ):  # a roll-up's occurrence: from its first to its last target
        spans = [_span(inc, inc["technique"]) for inc in incidents]
    return [(scope, spans)]


def _span(doc: dict[str, Any], technique: str) -> Span:
    end = doc["end"]
    return Span(
        after_start=doc["start"]["after"],
        solid_from=doc["start"]["at"],
        solid_to=end["after"] if end is not None else doc["last_seen"],
        before_end=end["at"] if end is not None else None,
        technique=technique,
        open=end is None,
    )


def _phase_spans(doc: dict[str, Any]) -> list[Span]:
    """A shutdown as one span per phase state (international shutdown, offline)."""
    whole = _span(doc, doc["technique"])
    phases = [p for p in doc["phases"] if p["state"] in ("international_shutdown", "offline")]
    if len(phases) <= 1:
        return [_span(doc, phases[0]["state"] if phases else doc["technique"])]
    out: list[Span] = []
    for i, phase in enumerate(phases):
        begin = whole.solid_from if i == 0 else phase["at"]
        last = i == len(phases) - 1
        end = whole.solid_to if last else phases[i + 1]["at"]
        out.append(
            Span(
                after_start=whole.after_start if i == 0 else None,
                solid_from=begin,
                solid_to=end,
                before_end=whole.before_end if last else None,
                technique=phase["state"],
                open=whole.open and last,
            )
        )
    return out


def timeline_svg(title: str, rows: Sequence[Row], zone: tzinfo, period: tuple[float, float]) -> str:
    """One picture (inline SVG text, no XML prologue) of ``rows`` in local time."""
    import matplotlib  # noqa: PLC0415 - optional dependency, see the module docstring

    matplotlib.use("Agg")
    from matplotlib import dates as mdates  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    shown = list(rows)[:MAX_ROWS]
    more = len(rows) - len(shown)
    lo, hi = _extent(shown, period)
    height = 0.9 + 0.32 * len(shown)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "reachwatch", "font.size": 9}):
        fig = Figure(figsize=(9.0, height), dpi=96)
        ax = fig.add_subplot()
        techniques: dict[str, str] = {}
        for y, (_, spans) in enumerate(shown):
            for span in spans:
                colour = COLOURS.get(span.technique, DEFAULT_COLOUR)
                techniques[span.technique] = colour
                _draw(ax, span, y, colour, hi)
        ax.set_yticks(range(len(shown)), [label for label, _ in shown])
        ax.set_ylim(len(shown) - 0.5, -0.5)
        ax.set_xlim(_num(lo), _num(hi))
        locator = mdates.AutoDateLocator(tz=zone)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        formatter = mdates.ConciseDateFormatter(locator, tz=zone)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(formatter)
        offset = datetime.fromtimestamp(lo, zone).strftime("%z")
        label = f"local time, {zone} (UTC{offset[:3]}:{offset[3:]})"
        ax.set_xlabel(label + (f"; {more} more rows not shown" if more else ""))
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.set_title(title, loc="left", fontsize=10)
        handles = [Patch(color=c, label=LEGEND.get(t, words(t))) for t, c in techniques.items()]
        handles.append(Patch(facecolor="white", edgecolor="#555555", hatch="///", label="start/end window"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = buf.getvalue()
    return re.sub(r"^.*?(<svg\b)", r"\1", svg, count=1, flags=re.S)


def _num(ts: float) -> float:
    """matplotlib's date number (UTC based; the axis shows it in the zone its locator and formatter use)."""
    from matplotlib import dates as mdates  # noqa: PLC0415 - optional dependency

    return float(mdates.date2num(datetime.fromtimestamp(ts, UTC)))  # type: ignore[no-untyped-call]


def _extent(rows: Sequence[Row], period: tuple[float, float]) -> tuple[float, float]:
    """The scope's span (windows included), padded, within the report's period."""
    starts = [
        s.after_start if s.after_start is not None else s.solid_from for _, spans in rows for s in spans
    ]
    ends = [
        period[1] if s.open else (s.before_end if s.before_end is not None else s.solid_to)
        for _, spans in rows
        for s in spans
    ]
    lo, hi = min(starts), max(ends)
    pad = max((hi - lo) * 0.08, 600.0)
    return max(period[0], lo - pad), min(period[1], hi + pad)


def _draw(ax: Any, span: Span, y: int, colour: str, right: float) -> None:
    num = _num
    kw: dict[str, Any] = {"height": 0.6}
    if span.after_start is not None and span.after_start < span.solid_from:
        a, b = num(span.after_start), num(span.solid_from)
        ax.barh(y, b - a, left=a, color="white", edgecolor=colour, hatch="///", linewidth=0.5, **kw)
    a, b = num(span.solid_from), num(max(span.solid_to, span.solid_from))
    ax.barh(y, max(b - a, 1e-4), left=a, color=colour, **kw)
    if span.before_end is not None and span.before_end > span.solid_to:
        a, end = num(span.solid_to), num(span.before_end)
        ax.barh(y, end - a, left=a, color="white", edgecolor=colour, hatch="///", linewidth=0.5, **kw)
    elif span.open and num(right) > b:
        ax.annotate("", xy=(num(right), y), xytext=(b, y), arrowprops={"arrowstyle": "->", "color": colour})
