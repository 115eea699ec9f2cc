"""The CLI's time arguments (``--since``/``--until``): a time in range, or one line and exit 2."""

from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from reachwatch.cli import MAX_TIME, main, parse_time
from reachwatch.errors import UsageError
from reachwatch.journal import Journal

from . import one_line

NUMBERS = st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.integers().map(str)
UNITS = st.sampled_from(["ms", "s", "m", "h", "d", "y"])
DURATIONS = st.builds(lambda n, u: f"{n}{u}", st.integers(min_value=0, max_value=10**30), UNITS)
ISO = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()) | st.datetimes().map(str)
TIMES = NUMBERS | DURATIONS | ISO | st.text(max_size=40)

_STATE = Path(tempfile.mkdtemp(prefix="rw-fuzz-")) / "st"
Journal(_STATE, retention=86400).close()  # an empty journal: history and export run to the end


@given(TIMES)
def test_a_time_argument_is_in_range_or_one_usage_error(text: str) -> None:
    try:
        value = parse_time(text, now=1_700_000_000.0)
    except UsageError as exc:
        assert one_line(str(exc))
        return
    assert math.isfinite(value) and 0.0 <= value <= MAX_TIME


@given(TIMES, st.none() | TIMES)
def test_history_and_export_exit_0_or_2_with_one_line(since: str, until: str | None) -> None:
    for argv in (
        ["history", "t", f"--since={since}"],
        ["export", f"--since={since}", *([f"--until={until}"] if until is not None else [])],
    ):
        out, err = io.StringIO(), io.StringIO()
        code = main([*argv, "--state-dir", str(_STATE)], out, err)
        assert code in (0, 2), (argv, err.getvalue())
        if code == 2:
            assert one_line(err.getvalue()), err.getvalue()
        else:
            assert err.getvalue() == ""
