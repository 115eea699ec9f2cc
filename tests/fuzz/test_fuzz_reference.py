"""Reference status documents from a peer that may lie or be broken: parsed or refused, never a crash."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reachwatch.reference import ReferenceFetchError, _parse_body, parse_status

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=10), kids, max_size=5),
    max_leaves=40,
)
ODD_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1.0, 0, True, "1700000000", None])
LAST = st.fixed_dictionaries(
    {},
    optional={
        "started_at": st.floats(allow_nan=True) | ODD_NUMBERS | JSON,
        "success": st.booleans() | JSON,
        "duration_s": st.floats(allow_nan=True) | JSON,
        "facts": st.dictionaries(st.text(max_size=10), JSON, max_size=4),
        "stage_durations": st.dictionaries(st.sampled_from(["connect", "tls_handshake", "x"]), JSON),
        "failure": st.sampled_from(["connection_reset", "quic_handshake_failed"]) | JSON,
    },
)
TARGET = st.fixed_dictionaries({}, optional={"name": st.text(max_size=30) | JSON, "last": LAST | JSON})
STATUS = st.fixed_dictionaries({"targets": st.lists(TARGET | JSON, max_size=8)}, optional={"vantage": JSON})


def _check(parsed: dict[str, Any]) -> None:
    for name, observation in parsed.items():
        assert isinstance(name, str)
        assert math.isfinite(observation.observed_at)  # NaN would pass every age comparison
        assert isinstance(observation.success, bool)
        assert all(math.isfinite(v) for v in observation.stage_durations.values())


@given(STATUS | JSON)
def test_any_json_is_a_status_or_a_value_error(doc: Any) -> None:
    try:
        parsed = parse_status(doc)
    except ValueError as exc:
        assert str(exc)
        return
    _check(parsed)


@given(st.binary(max_size=2048) | STATUS.map(lambda d: json.dumps(d, allow_nan=True).encode()))
def test_any_body_is_a_status_or_a_fetch_error(body: bytes) -> None:
    try:
        parsed = _parse_body(body, "abroad")
    except ReferenceFetchError as exc:
        assert "\n" not in str(exc)
        return
    _check(parsed)


@given(st.integers(min_value=1, max_value=100_000))
def test_deep_nesting_is_a_fetch_error_not_a_crash(depth: int) -> None:
    body = ("[" * depth + "]" * depth).encode()
    with contextlib.suppress(ReferenceFetchError):  # a list is not a status either
        _parse_body(body, "abroad")
