"""The two literal registries agree: every kind has a model (config.targets) and a probe (probes) that uses
it; lists spelt twice to keep imports light are compared with their source."""

from __future__ import annotations

import sys

import pytest

from reachwatch import cli
from reachwatch import logging as rwlog
from reachwatch.config.targets import TARGET_MODELS
from reachwatch.config.targets.shadowsocks import CIPHERS_2017, CIPHERS_2022
from reachwatch.probes import PROBE_MODULES, PROBES, spec_for


def test_every_kind_has_a_model_and_a_probe_and_nothing_else() -> None:
    assert list(TARGET_MODELS) == list(PROBE_MODULES)


@pytest.mark.parametrize("kind", sorted(TARGET_MODELS))
def test_the_probe_of_a_kind_uses_that_kinds_model(kind: str) -> None:
    spec = spec_for(kind)
    assert spec.kind == kind
    assert spec.target_model is TARGET_MODELS[kind]
    assert spec.target_model.model_fields["kind"].annotation.__args__ == (kind,)  # type: ignore[union-attr]
    assert PROBES[kind] is spec


def test_an_unknown_kind_is_a_key_error_and_membership_imports_nothing() -> None:
    with pytest.raises(KeyError):
        spec_for("carrier_pigeon")
    assert "carrier_pigeon" not in PROBES
    before = set(sys.modules)
    assert "tcp" in PROBES and len(PROBES) == len(PROBE_MODULES) and list(PROBES) == list(PROBE_MODULES)
    assert set(sys.modules) == before


def test_the_config_accepts_exactly_the_ciphers_the_streams_implement() -> None:
    from reachwatch.formats.shadowsocks import METHODS  # noqa: PLC0415 - the implementation side
    from reachwatch.formats.ss2022 import METHODS_2022  # noqa: PLC0415

    assert set(CIPHERS_2017) == set(METHODS)
    assert set(CIPHERS_2022) == set(METHODS_2022)


def test_the_cli_offers_the_log_levels_logging_knows() -> None:
    assert sorted(cli.LOG_LEVELS) == sorted(rwlog.LEVELS)
