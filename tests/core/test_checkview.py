"""How `reachwatch check` shows a sweep: 100 columns, evidence under the row, progress that names its work."""

from __future__ import annotations

import io
from typing import Any

from reachwatch.checkview import WIDTH, SweepProgress, evidence_items, render, render_wide, row_evidence


def _row(name: str, kind: str = "tcp", role: str = "target", **last: Any) -> dict[str, Any]:
    result = {"success": False, "duration_s": 1.25, "facts": {}, "failure": None, "stage": None, **last}
    return {
        "name": name,
        "kind": kind,
        "group": "g",
        "role": role,
        "verdict": "unreachable",
        "technique": None,
        "evidence": {},
        "reference": None,
        "last": result,
    }


def test_a_stalled_bootstrap_reads_as_a_sentence_and_a_finished_one_is_not_news() -> None:
    facts = {
        "bootstrap_tag": "conn",
        "bootstrap_progress": 5,
        "bootstrap_reason": "timeout",
        "transport": "obfs4",
        "bootstrap_seconds": 120.0,
    }
    assert evidence_items(facts) == [
        "bootstrap stalled at conn (5%)",
        "tor says: timeout",
        "transport: obfs4",
    ]
    done = {"bootstrap_tag": "done", "bootstrap_progress": 100, "transport": "snowflake"}
    assert evidence_items(done) == ["transport: snowflake"]
    assert "bootstrap_seconds=120" in evidence_items(facts, every=True)


def test_throttling_figures_and_the_reference_come_with_the_row() -> None:
    row = _row("news", kind="throughput", failure=None, facts={"throughput_bps": 18000.0})
    row["technique"], row["verdict"] = "throttled", "blocked"
    row["evidence"] = {"control_throughput_bps": 900000.0}
    row["reference"] = {"reference": "abroad-1", "success": True}
    assert row_evidence(row) == [
        "throughput: 18.0 kB/s",
        "control throughput: 900.0 kB/s",
        "reference abroad-1 reached it",
    ]


def test_every_line_fits_100_columns_even_with_long_names_and_failures() -> None:
    rows = [
        _row("c1", role="international_control", success=True),
        _row(
            "x" * 80,
            kind="openvpn_tunnel",
            failure="generic_timeout_error",
            stage="protocol_handshake",
            facts={"tls_issuer": "CN=" + "A" * 300},
        ),
        _row("short", kind="tor_bootstrap", failure="tor_bootstrap_stalled", stage="tunnel"),
    ]
    lines = render("online", "an international control is reachable", rows)
    assert max(map(len, lines)) <= WIDTH, "\n".join(lines)
    # the failure and stage stay whole; the long name gives way first
    assert any("generic_timeout_error@protocol_handshake" in ln for ln in lines)
    assert any(ln.startswith("x" * 20) and "…" in ln for ln in lines)
    assert sum(ln.count("A") for ln in lines if ln.startswith("    ")) == 300  # the issuer whole
    wide = render_wide("online", "ok", rows)
    assert any("x" * 80 in ln for ln in wide) and max(map(len, wide)) > WIDTH


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_says_what_it_waits_for() -> None:
    err = Tty()
    shown = SweepProgress(
        err, ["ctl"], ["obfs4-home", "snowflake-1", "vpn-a", "proxy-b", "ss-c"], tty=True, quiet_below=10
    )
    shown.start()
    shown.finished("ctl", ("online", "an international control is reachable"))
    shown.finished("vpn-a")
    text = err.getvalue()
    assert "checking 1 control first (is this vantage online?), then 5 targets" in text
    assert (
        "controls done: vantage online (an international control is reachable); checking 5 targets\n" in text
    )
    assert text.rsplit("\r\x1b[K", 1)[1] == "checked 2/6, waiting for obfs4-home, snowflake-1, proxy-b (+1)"


def test_progress_into_a_pipe_is_silent_for_small_sweeps_and_stepwise_for_large() -> None:
    small = io.StringIO()
    shown = SweepProgress(small, ["ctl"], ["a"], tty=False, quiet_below=10)
    shown.start()
    shown.finished("ctl", ("online", "ok"))
    shown.finished("a")
    assert small.getvalue() == ""
    big = io.StringIO()
    names = [f"t{i}" for i in range(29)]
    shown = SweepProgress(big, ["ctl"], names, tty=False, quiet_below=10)
    shown.start()
    shown.finished("ctl", ("online", "ok"))
    for name in names:
        shown.finished(name)
    lines = big.getvalue().splitlines()
    assert lines[-1] == "checked 30/30" and "\r" not in big.getvalue()
    assert 10 <= len(lines) <= 13  # a line per tenth, not per target
