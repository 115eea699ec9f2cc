"""docs/CONFIGURATION.md is generated from the schema: it must be current, cover every kind, and its examples
must validate."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Literal

import pytest
from pydantic import Field

from reachwatch.config.load import parse_config
from reachwatch.config.secrets import PublicFile, SecretEnv, SecretFile
from reachwatch.config.types import Duration, StrictModel, TargetBase
from reachwatch.errors import ConfigError
from reachwatch.probes import PROBES

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "CONFIGURATION.md"
FENCE = re.compile(r"^```yaml\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config_docs", ROOT / "scripts" / "gen_config_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_config_docs", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def committed() -> str:
    return DOC.read_text(encoding="utf-8")


def test_committed_reference_equals_what_the_generator_produces_now(committed: str) -> None:
    text, _, _ = _generator().render()
    assert committed == text, (
        "docs/CONFIGURATION.md is stale (the schema or a probe docstring changed): "
        "run `make docs` (or `.venv/bin/python scripts/gen_config_docs.py`) and commit the result"
    )


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_every_registered_kind_has_a_section(committed: str, kind: str) -> None:
    assert f"\n### `{kind}`\n" in committed, f"no section for kind {kind!r}: run `make docs`"
    section = committed.split(f"\n### `{kind}`\n", 1)[1].split("\n### ", 1)[0]
    assert f"kind: {kind}\n" in section, (
        f"the {kind} section has no valid example: add placeholder values to scripts/gen_config_docs.py"
    )


def _examples() -> list[str]:
    return FENCE.findall(DOC.read_text(encoding="utf-8"))


def test_reference_has_one_example_per_kind_plus_the_minimal_config_and_the_common_fields() -> None:
    assert len(_examples()) == len(PROBES) + 2


@pytest.mark.parametrize("example", _examples(), ids=lambda text: text.split("kind: ")[-1].split("\n")[0])
def test_every_example_in_the_reference_validates(example: str) -> None:
    loaded = parse_config(example, "docs/CONFIGURATION.md", ROOT)
    assert loaded.config.all_targets(), "an example should configure at least one target"


def test_an_invalid_example_would_be_caught() -> None:
    # the validation above is real: the same parser rejects an example with a field of another kind
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config("targets:\n  - {name: a, kind: tcp, host: h, port: 1, bridges: []}\n", "x", ROOT)


def test_secret_fields_are_marked_and_the_mode_rule_stated(committed: str) -> None:
    assert "mode 0600" in committed
    assert "| `private_key_file` **secret** |" in committed
    assert "| `password_env` **secret** |" in committed
    assert "| `ca_file` |" in committed  # a CA bundle is public: no 0600 demanded


# --- the generator's reading of the sources, on models and text made for the purpose -----------------


class _Options(StrictModel):
    """Mixin options.

    - ``alpha`` / ``beta``: shared text (``beta`` is the second); more about both.
    - ``gamma`` (own words), ``delta`` (other words); ``epsilon``: last one.
    """

    alpha: int = 1
    beta: int = 2
    gamma: bool = False
    delta: bool = True
    epsilon: str = ""


class _DemoTarget(TargetBase, _Options):
    """A demo target. ``token_file`` holds the key."""

    kind: Literal["demo"]
    host: str = Field(min_length=1)
    port: int = Field(default=443, ge=1, le=65535)
    every: Duration = 300.0  # how often
    mode: Literal["a", "b"] = Field(default="a", description="from Field(description)")
    token_file: SecretFile | None = None
    token_env: SecretEnv | None = None
    ca_file: PublicFile | None = None
    """An attribute docstring."""
    undocumented: list[str] = Field(default_factory=list, max_length=3)


def test_field_descriptions_come_from_field_docstrings_bullets_and_comments() -> None:
    gen = _generator()
    missing: list[str] = []
    table = gen.fields_table(_DemoTarget, gen.field_order(_DemoTarget), {}, missing)
    rows = {line.split(" | ")[0].strip("| `").split("`")[0]: line for line in table.splitlines()[2:]}
    assert list(rows)[:2] == ["host", "port"], "a target's own fields come before mixin fields"
    assert "| integer, 1 to 65535 | `443` |" in rows["port"]
    assert "| duration | `5m` | how often |" in rows["every"]
    assert "| one of `a`, `b` | `a` | from Field(description) |" in rows["mode"]
    assert "An attribute docstring." in rows["ca_file"]
    assert "| `token_file` holds the key. |" in rows["token_file"]
    assert "**secret**" in rows["token_file"] and "**secret**" in rows["token_env"]
    assert "**secret**" not in rows["ca_file"]
    assert "shared text (`beta` is the second); more about both" in rows["alpha"]
    assert "see `alpha`" in rows["beta"]
    assert "own words" in rows["gamma"] and "other words" in rows["delta"]
    assert "last one" in rows["epsilon"]
    assert "list of string (at most 3 items)" in rows["undocumented"]
    assert missing == [f"{__name__}._DemoTarget.token_env", f"{__name__}._DemoTarget.undocumented"]


def test_comments_of_yaml_examples_document_fields_by_kind_and_by_parent() -> None:
    text = (
        "web:\n"
        "  listen_address: 127.0.0.1:1   # where to listen\n"
        "targets:\n"
        "  # tls: prose that is not a key\n"
        "  - name: a\n"
        "    kind: tls\n"
        "    # neutral_sni: x.example   # a harmless name\n"
        "    canary:\n"
        "      host: c.example          # the echo service\n"
        "  - name: b\n"
        "    kind: dns\n"
        "    system: true               # ask getaddrinfo too\n"
        "    proto: udp                 # or tcp\n"
    )
    comments = _generator().yaml_comments(text)
    assert comments == {
        ("field", "web", "listen_address"): "where to listen",
        ("kind", "tls", "neutral_sni"): "a harmless name",
        ("field", "canary", "host"): "the echo service",
        ("kind", "dns", "system"): "ask getaddrinfo too",
    }


@pytest.mark.parametrize(
    ("seconds", "text"), [(600.0, "10m"), (15.0, "15s"), (0.25, "250ms"), (2592000.0, "30d")]
)
def test_durations_are_written_as_an_operator_would(seconds: float, text: str) -> None:
    assert _generator().duration_text(seconds) == text


def test_a_kind_whose_example_cannot_validate_leaves_a_visible_gap_not_a_broken_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gen = _generator()
    monkeypatch.setitem(gen.PLACEHOLDERS, "fingerprint", "not-a-fingerprint")
    text, _, problems = gen.render()
    assert any("kind tor_relay" in p and "PLACEHOLDERS" in p for p in problems)
    section = text.split("\n### `tor_relay`\n", 1)[1].split("\n### ", 1)[0]
    assert "kind: tor_relay\n" not in section
    assert "(no example: the generated one does not validate" in section


def test_every_module_the_reference_links_exists(committed: str) -> None:
    linked = set(re.findall(r"\]\(\.\./(daemon/[^)]+\.py)\)", committed))
    assert len(linked) >= len({spec.probe.__module__ for spec in PROBES.values()})
    assert [path for path in sorted(linked) if not (ROOT / path).is_file()] == []
