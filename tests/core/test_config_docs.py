"""docs/CONFIGURATION.md is generated from the schema: it must be current, cover every kind, and its examples
must validate."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from reachwatch.config.load import parse_config
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
    text, _ = _generator().render()
    assert committed == text, (
        "docs/CONFIGURATION.md is stale (the schema or a probe docstring changed): "
        "run `make docs` (or `.venv/bin/python scripts/gen_config_docs.py`) and commit the result"
    )


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_every_registered_kind_has_a_section(committed: str, kind: str) -> None:
    assert f"\n### `{kind}`\n" in committed, f"no section for kind {kind!r}: run `make docs`"
    section = committed.split(f"\n### `{kind}`\n", 1)[1].split("\n### ", 1)[0]
    assert f"kind: {kind}\n" in section, f"the {kind} section has no example"


def _examples() -> list[str]:
    return FENCE.findall(DOC.read_text(encoding="utf-8"))


def test_reference_has_one_example_per_kind_plus_the_minimal_config() -> None:
    assert len(_examples()) == len(PROBES) + 1


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
