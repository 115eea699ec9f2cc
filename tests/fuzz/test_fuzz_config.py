"""Config files from Hypothesis: structured documents near the schema, arbitrary text, deep nesting and
aliases. Loading validates, or refuses with ONE line that starts with the file's name; no other
exception, and no secret value of the document in the message."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from reachwatch.cli import main
from reachwatch.config.load import parse_config
from reachwatch.errors import ConfigError

from . import one_line

SECRET = st.shared(st.text(alphabet="0123456789abcdef", min_size=12, max_size=16).map("Pw{}".format), key="s")
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["30s", "5m", "1e300", ".inf", "0", "-1s", "99999999999d", "localhost:10491", "a b"])
)
JSONISH = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=25,
)
KINDS = st.sampled_from(["tcp", "tls", "http", "https", "dns", "socks5", "tor_bridge", "tor_bootstrap", "x"])
HOSTS = st.sampled_from(["vpn.example.net", "198.51.100.7", "[2001:db8::1]", "a b", "https://x/", "h:1"])
BRIDGE = st.builds(
    lambda t, s: f"{t} 192.0.2.44:8443 0123456789ABCDEF0123456789ABCDEF01234567 cert={s} iat-mode=0",
    st.sampled_from(["obfs4", "obfs5", "webtunnel", ""]),
    SECRET,
)
TARGET = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", "bad name", ""]) | st.text(max_size=8), "kind": KINDS},
    optional={
        "host": HOSTS,
        "port": st.integers(-1, 70000) | JSONISH,
        "url": st.sampled_from(["https://www.example.org/", "ftp://x", "http://[::1"]) | JSONISH,
        "interval": SCALARS,
        "timeout": SCALARS,
        "private": st.booleans() | JSONISH,
        "bridge": BRIDGE | JSONISH,
        "bridges": st.lists(BRIDGE, max_size=3) | JSONISH,
        "password_file": st.just("pw.txt") | JSONISH,
        "labels": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3) | JSONISH,
    },
)
DEFAULTS = dict.fromkeys(["interval", "timeout", "jitter"], SCALARS)
CONFIG = st.fixed_dictionaries(
    {},
    optional={
        "targets": st.lists(TARGET | JSONISH, max_size=4),
        "defaults": st.fixed_dictionaries({}, optional=DEFAULTS),
        "web": st.fixed_dictionaries({}, optional={"listen_address": SCALARS, "config_file": JSONISH}),
        "tor": st.fixed_dictionaries(
            {}, optional={"torrc": st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3)}
        ),
        "scheduler": JSONISH,
        "journal": JSONISH,
        "vantage": JSONISH,
    },
)


def _dump(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, RecursionError):
        return "{}"


TEXTS = (
    CONFIG.map(_dump)
    | st.text(max_size=300)
    | st.integers(1, 3000).map(lambda n: "a: " + "[" * n + "]" * n)
    | st.integers(1, 40).map(lambda n: "a: &x [1]\n" + "".join(f"b{i}: &x{i} [*x, *x]\n" for i in range(n)))
    | st.builds(lambda a, b: f"{a}\n{a}\n{b}", st.sampled_from(["targets: []", "web: {}"]), st.text())
)


@given(TEXTS, SECRET)
def test_a_config_loads_or_is_refused_in_one_line_without_its_secrets(text: str, secret: str) -> None:
    try:
        parse_config(text, "fuzz.yaml", Path(tempfile.gettempdir()))
    except ConfigError as exc:
        message = str(exc)
        assert one_line(message) and message.startswith("fuzz.yaml"), message
        assert secret not in message, message
        event("refused")
        return
    event("accepted")


@given(CONFIG.map(_dump))
def test_validate_exits_0_or_2_with_one_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(text)
        path.chmod(0o600)
        out, err = io.StringIO(), io.StringIO()
        code = main(["validate", str(path)], out, err)
        assert code in (0, 2), err.getvalue()
        stream = out if code == 0 else err
        assert one_line(stream.getvalue()), stream.getvalue()
