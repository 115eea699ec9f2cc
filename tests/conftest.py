"""Suite-wide fixtures and rules. Area fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os

import pytest


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
