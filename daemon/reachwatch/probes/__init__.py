"""Probes: one module per protocol, all with the signature of ``probes.base``; this is the registry.

The registry is a literal mapping so "which kinds exist" is answered by reading one dict. Each module
exports ``SPEC`` (its config model and probe function). ``config.schema`` builds the target union from it.
"""

from __future__ import annotations

from typing import Any

from reachwatch.probes import tcp
from reachwatch.probes import tls as tls_probe
from reachwatch.probes.base import ProbeSpec

PROBES: dict[str, ProbeSpec[Any]] = {
    "tcp": tcp.SPEC,
    "tls": tls_probe.SPEC,
}

__all__ = ["PROBES"]
