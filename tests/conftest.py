"""Suite-wide fixtures and rules. Area fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``root`` need network namespaces, nftables or tc: skipped only when not root."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces / nftables / tc); CI runs as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
