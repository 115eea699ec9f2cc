"""Suite-wide fixtures and rules. Area fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import HealthCheck, settings

# Property-based fuzzing (tests/fuzz). The default suite runs a small, derandomized budget: the same
# examples every run, so a failure in CI reproduces locally and the suite's time stays put.
# HYPOTHESIS_PROFILE=soak searches far wider (random, thousands of examples per property).
_FUZZ = {"deadline": 5000, "suppress_health_check": [HealthCheck.too_slow], "database": None}
settings.register_profile("default", max_examples=60, derandomize=True, **_FUZZ)
settings.register_profile("soak", max_examples=3000, derandomize=False, **_FUZZ)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """A test that runs the CLI or the daemon in process configures structlog (an info-level filter, its
    output stream) and the stdlib root logger: put both back, so a later test's log capture does not
    depend on which tests ran before it (the order differs under ``-n``)."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="also run the soak-length tests (marked soak); the default suite skips them",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``soak`` tests run only with ``--soak`` (or RW_SOAK=1): they take tens of minutes, and ``make test``
    must stay within ~15 minutes on two cores. Tests marked ``root`` need network namespaces, nftables or
    tc: skipped only when not root."""
    if not (config.getoption("--soak") or os.environ.get("RW_SOAK") == "1"):
        skip_soak = pytest.mark.skip(reason="soak-length run: use --soak (or RW_SOAK=1)")
        for item in items:
            if "soak" in item.keywords:
                item.add_marker(skip_soak)
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces / nftables / tc); CI runs as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
