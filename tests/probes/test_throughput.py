"""The throughput probe against shaped aiohttp downloads on 127.0.0.1 (no wall-clock asserts: the
shaping rates differ 32-fold, the threshold is 4-fold)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from reachwatch.config.targets.throughput import ThroughputTarget
from reachwatch.failures import Failure, Stage, Technique
from tests.probes.util import run
from tests.servers import free_port, http_app, http_cut, paced_app, server_context, tcp_server

SIZE = 256 * 1024
FAST = 8 * 1024 * 1024.0  # bytes/second
SLOW = 256 * 1024.0


def shaped() -> dict[str, tuple[int, float]]:
    return {
        "/fast": (SIZE, FAST),
        "/also-fast": (SIZE, FAST),
        "/slow": (SIZE, SLOW),
        "/short": (SIZE // 2, FAST),
    }


def target(port: int, path: str, control_port: int | None = None, **extra: object) -> dict[str, object]:
    return {
        "kind": "throughput",
        "url": f"http://127.0.0.1:{port}{path}",
        "control_url": f"http://127.0.0.1:{control_port or port}/fast",
        "size": SIZE,
        **extra,
    }


async def test_equal_rates_are_not_throttled() -> None:
    async with http_app(paced_app(shaped())) as port:
        result = await run(target(port, "/also-fast"))
    assert result.success, result
    assert result.facts["transfer_bytes"] == SIZE
    assert float(result.facts["throughput_bps"]) > 0
    assert float(result.facts["control_throughput_bps"]) > 0
    assert "transfer" in result.stage_durations


async def test_rate_limited_url_is_throttled_relative_to_control() -> None:
    async with http_app(paced_app(shaped())) as port:
        result = await run(target(port, "/slow"), timeout=10)
    assert (result.failure, result.stage) == (Failure.THROUGHPUT_BELOW_THRESHOLD, Stage.TRANSFER)
    assert result.evidence is Technique.THROTTLED
    assert float(result.facts["throughput_ratio"]) < 0.25


async def test_transfer_that_outlasts_its_budget_is_measured_not_failed_for_time() -> None:
    async with http_app(paced_app(shaped())) as port:
        result = await run(target(port, "/slow", transfer_timeout=0.3), timeout=10)
    assert result.failure is Failure.THROUGHPUT_BELOW_THRESHOLD
    assert result.facts["transfer_timed_out"] is True
    assert 0 < int(result.facts["transfer_bytes"]) < SIZE


async def test_body_shorter_than_size_is_measured_on_what_came() -> None:
    async with http_app(paced_app(shaped())) as port:
        result = await run(target(port, "/short"))
    assert result.facts["transfer_bytes"] == SIZE // 2


@pytest.mark.parametrize("rst", [False, True])
async def test_cut_mid_transfer_is_transfer_incomplete(rst: bool) -> None:
    async with tcp_server(http_cut(SIZE, 20_000, rst=rst)) as port:
        result = await run(target(port, "/", control_port=free_port()))
    assert (result.failure, result.stage) == (Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER)


async def test_failed_control_is_reported_as_such() -> None:
    async with http_app(paced_app(shaped())) as port:
        result = await run(target(port, "/fast", control_port=free_port()))
    assert (result.failure, result.stage) == (Failure.CONNECTION_REFUSED, Stage.CONNECT)
    assert result.facts["failed_transfer"] == "control"
    assert "throughput_bps" in result.facts


async def test_https_transfer_with_private_ca(ca: trustme.CA, ca_file: Path) -> None:
    async with http_app(paced_app(shaped()), ssl_ctx=server_context(ca, "127.0.0.1", "dl.test")) as port:
        result = await run(
            {
                "kind": "throughput",
                "url": f"https://dl.test:{port}/fast",
                "address": "127.0.0.1",
                "tls": {"ca_file": str(ca_file)},
                "control_url": f"https://127.0.0.1:{port}/also-fast",
                "control_tls": {"ca_file": str(ca_file)},
                "size": SIZE,
            }
        )
    assert result.success, result
    assert "tls_handshake" in result.stage_durations


def test_sensitive_values_cover_url_host_and_address() -> None:
    model = ThroughputTarget.model_validate(
        {
            "name": "x",
            "kind": "throughput",
            "url": "https://dl.secret.test/f",
            "address": "192.0.2.5",
            "control_url": "https://c.test/f",
        }
    )
    assert {"dl.secret.test", "192.0.2.5"} <= set(model.sensitive_values())
    assert model.destination() == "192.0.2.5:443"


def test_sensitive_values_cover_both_kinds_of_pin() -> None:
    """A certificate fingerprint identifies a server as well as its key does (as for tls/https)."""
    fp = "ab" * 32
    model = ThroughputTarget.model_validate(
        {
            "name": "x",
            "kind": "throughput",
            "url": "https://dl.secret.test/f",
            "control_url": "https://c.test/f",
            "tls": {"verify": False, "spki_sha256": ["c3BraQ=="], "cert_sha256": [fp]},
        }
    )
    assert {"c3BraQ==", fp} <= set(model.sensitive_values())
