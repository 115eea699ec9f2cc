"""Fixtures for probe tests: a trusted test CA written to disk, and a path to its PEM."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(ca.cert_pem.bytes())
    return path
