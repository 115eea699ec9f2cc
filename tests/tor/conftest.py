"""Fixtures for Tor tests: a real, lone Debian ``tor`` relay on 127.0.0.1 (``tor_relay_process``, see
``tests/tor/lonerelay.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tor.lonerelay import TorRelayProcess, lone_relay

__all__ = ["TorRelayProcess"]


@pytest.fixture(scope="session")
def tor_relay_process() -> Iterator[TorRelayProcess]:
    """One lone relay for the whole session (about a second to start)."""
    with lone_relay() as relay:
        yield relay
