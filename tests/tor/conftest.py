"""Fixtures for Tor tests: a real, lone Debian ``tor`` relay on 127.0.0.1 (``tor_relay_process``, see
``tests/tor/lonerelay.py``) and the private Tor network (``torlab``, see ``tests/tor/torlab.py``)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tor.lonerelay import TorRelayProcess, lone_relay
from tests.tor.torlab import TorLab

__all__ = ["TorRelayProcess"]


@pytest.fixture(scope="session")
def tor_relay_process() -> Iterator[TorRelayProcess]:
    """One lone relay for the whole session (about a second to start)."""
    with lone_relay() as relay:
        yield relay


@pytest.fixture(scope="session")
def torlab() -> Iterator[TorLab]:
    """The private Tor network (tests/tor/torlab.py), started once per session (about 20-30 s)."""
    root = Path(tempfile.mkdtemp(prefix="rw-torlab-"))
    lab = TorLab(root)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
        shutil.rmtree(root, ignore_errors=True)
