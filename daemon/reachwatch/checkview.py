"""How ``reachwatch check`` shows one sweep: a table that fits 100 columns, the evidence readable under it.

The first table had every column side by side (~146 columns on an ordinary sweep) and no room for what
an operator most needs to read: *why* (the issuer of a substituted certificate, where a tor bootstrap
stalled, how slow a throttled transfer was). So the default view is:

- one line for the vantage state, then the controls (they decide whether anything can be judged);
- one row per target: name, kind, verdict, the technique (or the failure and its stage), the time;
- under a row, indented and wrapped at 100 columns, the facts that explain it (``evidence_items``).

Long names and kinds are cut with "…" so a row never wraps; the full values are in ``--wide`` (every
column: group, role, failure and stage apart, every fact) and in ``--json``. This module only formats:
it takes the rows ``cli`` builds (plain dicts, as in ``--json``) and returns lines.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

WIDTH = 100
INDENT = "    "
ELLIPSIS = "…"
# the narrowest a column gets when a table would exceed WIDTH (the first listed gives way first);
# the evidence lines below the rows take the full width
_SHRINK = (("TARGET", 16), ("WHY", 24), ("KIND", 10), ("CONTROL", 16), ("RESULT", 24))
# at most this many facts under a row in the narrow view (all of them with --wide)
MAX_EVIDENCE_ITEMS = 3

# facts worth reading first, in this order, with the words that introduce them
_FIRST: tuple[tuple[str, str], ...] = (
    ("hint", "what to do"),
    ("tls_issuer", "issuer"),
    ("tls_leaf_issuer", "leaf issuer"),
    ("bootstrap_tag", "bootstrap stalled at"),
    ("bootstrap_reason", "tor says"),
    ("orconn_reason", "tor says"),
    ("http_status", "HTTP status"),
    ("status_code", "HTTP status"),
    ("cut_after_bytes", "cut after bytes"),
    ("cut_after_s", "cut after seconds"),
    ("throughput_bps", "throughput"),
    ("control_throughput_bps", "control throughput"),
    ("neutral_sni_handshake", "neutral SNI handshake"),
    ("other_payload_reaction", "other payload"),
    ("transport", "transport"),
)


def _rate(value: float) -> str:
    for unit, size in (("MB/s", 1e6), ("kB/s", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B/s"


def _fmt(value: Any, key: str = "") -> str:
    if key.endswith("_bps") and isinstance(value, int | float) and not isinstance(value, bool):
        return _rate(float(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def evidence_items(facts: Mapping[str, Any], *, every: bool = False) -> list[str]:
    """``label: value`` strings for a result's facts, the telling ones first.

    ``every=False``: only the facts listed in ``_FIRST`` (at most ``MAX_EVIDENCE_ITEMS``); a stalled
    bootstrap reads "bootstrap stalled at conn (5%)". ``every=True``: all facts, the rest as ``key=value``.
    """
    items: list[str] = []
    seen: set[str] = set()
    for key, label in _FIRST:
        if key not in facts or key in seen:
            continue
        seen.add(key)
        if key == "tls_leaf_issuer" and facts[key] == facts.get("tls_issuer"):
            continue  # a one-certificate chain: the same name twice says nothing more
        if key == "bootstrap_tag":
            if facts.get("bootstrap_progress") == 100 or facts[key] == "done":
                seen.add("bootstrap_progress")
                continue
            progress = facts.get("bootstrap_progress")
            suffix = f" ({progress}%)" if progress is not None else ""
            seen.add("bootstrap_progress")
            items.append(f"{label} {_fmt(facts[key])}{suffix}")
            continue
        items.append(f"{label}: {_fmt(facts[key], key)}")
    if not every:
        return items[:MAX_EVIDENCE_ITEMS]
    items += [f"{key}={_fmt(value, key)}" for key, value in sorted(facts.items()) if key not in seen]
    return items


def row_evidence(row: Mapping[str, Any], *, every: bool = False) -> list[str]:
    """The evidence under one row: the judged outcome's figures, the attempt's facts, the reference."""
    last = row.get("last") or {}
    facts = {**(last.get("facts") or {}), **(row.get("evidence") or {})}
    items = evidence_items(facts, every=every)
    ref = row.get("reference")
    if ref:
        seen = "reached it" if ref.get("success") else f"failed too ({ref.get('failure') or 'failed'})"
        items.append(f"reference {ref.get('reference')} {seen}")
    return items


def why(row: Mapping[str, Any]) -> str:
    """The technique of a blocked target, else ``failure@stage`` of the last attempt, else ``-``."""
    if row.get("technique"):
        return str(row["technique"])
    last = row.get("last") or {}
    failure = last.get("failure")
    if not failure:
        return "-"
    stage = last.get("stage")
    return f"{failure}@{stage}" if stage else str(failure)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + ELLIPSIS


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, fit: bool) -> list[str]:
    """Columns two spaces apart; with ``fit``, the widest columns give way (cut with "…") to fit WIDTH."""
    body = [list(r) for r in rows]
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(header)]
    if fit:
        for name, floor in _SHRINK:
            if name not in header:
                continue
            i = header.index(name)
            excess = sum(widths) + 2 * (len(widths) - 1) - WIDTH
            if excess > 0:
                widths[i] = max(floor, len(name), widths[i] - excess)
        body = [[_cut(cell, w) for cell, w in zip(r, widths, strict=True)] for r in body]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [list(header), *body]
    ]


def _seconds(row: Mapping[str, Any]) -> str:
    last = row.get("last")
    return f"{last['duration_s']:.1f}s" if last else "-"


def _wrapped(items: list[str]) -> list[str]:
    if not items:
        return []
    return textwrap.wrap(
        "; ".join(items),
        width=WIDTH,
        initial_indent=INDENT,
        subsequent_indent=INDENT,
        break_long_words=True,
        break_on_hyphens=False,
    )


def render(vantage_state: str, vantage_reason: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The default view: controls, then targets, each row followed by its evidence (100 columns)."""
    lines = _wrapped([f"vantage: {vantage_state} ({vantage_reason})"])
    lines = [line.removeprefix(INDENT) for line in lines]
    controls = [r for r in rows if r["role"] != "target"]
    targets = [r for r in rows if r["role"] == "target"]
    if controls:
        lines.append("")
        header = ("CONTROL", "KIND", "WHERE", "RESULT", "TIME")
        body = [
            (
                r["name"],
                r["kind"],
                str(r["role"]).removesuffix("_control"),
                "ok" if (r.get("last") or {}).get("success") else why(r) if r.get("last") else "-",
                _seconds(r),
            )
            for r in controls
        ]
        lines += _table(header, body, fit=True)
    if targets:
        lines.append("")
        header = ("TARGET", "KIND", "VERDICT", "WHY", "TIME")
        table = _table(
            header, [(r["name"], r["kind"], r["verdict"], why(r), _seconds(r)) for r in targets], fit=True
        )
        lines.append(table[0])
        for row, line in zip(targets, table[1:], strict=True):
            lines.append(line)
            lines += _wrapped(row_evidence(row))
    return lines


def render_wide(vantage_state: str, vantage_reason: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every column and every fact, nothing cut (lines as long as the values)."""
    header = (
        "TARGET",
        "KIND",
        "GROUP",
        "ROLE",
        "VERDICT",
        "TECHNIQUE",
        "FAILURE",
        "STAGE",
        "TIME",
        "EVIDENCE",
    )
    body = []
    for r in rows:
        last = r.get("last") or {}
        body.append(
            (
                r["name"],
                r["kind"],
                str(r.get("group") or "-"),
                r["role"],
                r["verdict"],
                r.get("technique") or "-",
                last.get("failure") or "-",
                last.get("stage") or "-",
                _seconds(r),
                "; ".join(row_evidence(r, every=True)) or "-",
            )
        )
    return [f"vantage: {vantage_state} ({vantage_reason})", *_table(header, body, fit=False)]


class SweepProgress:
    """What a sweep is doing, on stderr: which phase, how far, and which attempts it is waiting for.

    A one-off check of a tor bootstrap or a snowflake bridge can take two minutes; "[3/14]" alone looks
    hung. On a terminal one line is rewritten in place ("checked 3/14, waiting for obfs4-home,
    snowflake-1 (+2)"); otherwise (a log, a pipe) a line per phase and per tenth of the work, and only
    for sweeps of ``quiet_below`` targets or more, so a script's stderr stays empty for small checks.
    """

    def __init__(
        self,
        err: Any,
        controls: Sequence[str],
        targets: Sequence[str],
        *,
        tty: bool,
        quiet_below: int,
    ) -> None:
        self.err = err
        self.tty = tty
        self.controls = list(controls)
        self.targets = list(targets)
        self.total = len(self.controls) + len(self.targets)
        self.enabled = tty or self.total >= quiet_below
        self.done: set[str] = set()
        self._last_step = 0
        self._cursor = [0, 0]  # per phase (controls, targets): every name before it has finished

    def _say(self, text: str) -> None:
        if self.tty:
            self.err.write("\r\x1b[K" + _cut(text, WIDTH - 1))
        else:
            self.err.write(text + "\n")
        self.err.flush()

    def _line(self, text: str) -> None:
        """A line that stays (a phase): on a terminal it replaces the live line."""
        self.err.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self.err.flush()

    def start(self) -> None:
        if not self.enabled:
            return
        parts = []
        if self.controls:
            n = len(self.controls)
            parts.append(f"{n} control{'s' if n != 1 else ''} first (is this vantage online?)")
        if self.targets:
            n = len(self.targets)
            parts.append(f"{n} target{'s' if n != 1 else ''}")
        self._line("checking " + ", then ".join(parts) + "; each attempt is bounded by its timeout")

    def _pending(self) -> tuple[list[str], int]:
        """The first three attempts of the current phase still running, and how many are.

        Amortized constant per call: a cursor per phase moves past finished names (attempts finish
        roughly in the order they started), so a 7,000-relay sweep does not rescan the list 7,000 times.
        """
        controls_left = len(self.controls) - sum(1 for c in self.controls if c in self.done)
        phase, key = (self.controls, 0) if controls_left else (self.targets, 1)
        cursor = self._cursor[key]
        while cursor < len(phase) and phase[cursor] in self.done:
            cursor += 1
        self._cursor[key] = cursor
        first: list[str] = []
        for name in phase[cursor:]:
            if name not in self.done:
                first.append(name)
                if len(first) == 3:
                    break
        left = controls_left if key == 0 else len(self.targets) - (len(self.done) - len(self.controls))
        return first, left

    def finished(self, name: str, vantage: tuple[str, str] | None = None) -> None:
        """One attempt finished; ``vantage`` (state, reason) once the last control has."""
        self.done.add(name)
        if not self.enabled:
            return
        count = len(self.done)
        if vantage is not None and self.targets:
            self._line(
                f"controls done: vantage {vantage[0]} ({vantage[1]}); checking {len(self.targets)} targets"
            )
        first, left = self._pending()
        shown = ", ".join(first) + (f" (+{left - len(first)})" if left > len(first) else "")
        text = f"checked {count}/{self.total}" + (f", waiting for {shown}" if left else "")
        if self.tty:
            self._say(text)
            if count == self.total:
                self.err.write("\n")
            return
        step = count * 10 // self.total
        if count == self.total or step > self._last_step:
            self._last_step = step
            self._say(text)
