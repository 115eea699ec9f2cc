"""Logging: formats, levels, and the redaction processor that keeps private values out of every line."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from reachwatch import logging as rwlog
from reachwatch.config.load import parse_config
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe

PRIVATE_HOST = "127.0.0.1"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    yield buf
    rwlog.REDACTOR.update([])
    structlog.reset_defaults()
    logging.getLogger().handlers = []


def _refused_port() -> int:
    s = socket.socket()
    s.bind((PRIVATE_HOST, 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens now: connecting is refused
    return int(port)


def _loaded(tmp_path: Path, port: int, secret: str = "hunter2-very-secret") -> object:
    pw = tmp_path / "ref.pass"
    pw.write_text(secret + "\n")
    pw.chmod(0o600)
    text = f"""
reference_vantages:
  - {{name: outside, url: "https://ref.example/", username: rw, password_file: ref.pass}}
targets:
  - {{name: secret-bridge, kind: tcp, host: "{PRIVATE_HOST}", port: {port}, private: true}}
  - {{name: public-site, kind: tcp, host: "localhost", port: {port}}}
"""
    return parse_config(text, str(tmp_path / "c.yaml"), tmp_path)


async def test_private_host_never_reaches_debug_log_output(tmp_path: Path, stream: io.StringIO) -> None:
    port = _refused_port()
    loaded = _loaded(tmp_path, port)
    rwlog.configure("debug", "console", stream)
    rwlog.update_redaction(loaded)  # type: ignore[arg-type]
    target = loaded.config.targets[0]  # type: ignore[attr-defined]
    ctx = ProbeContext(target=target.name, kind="tcp", timeout=5, private=True)
    result = await run_probe(PROBES["tcp"], target, ctx)
    assert result.failure is not None and result.failure.value == "connection_refused"
    log = structlog.get_logger("test")
    log.debug(
        "probe_detail", host=target.host, nested={"addrs": [f"{target.host}:{port}"]}, obj=Path(target.host)
    )
    try:
        raise ConnectionRefusedError(f"connect to {target.host}:{port} failed")
    except ConnectionRefusedError:
        log.exception("probe_crashed")
    logging.getLogger("aiohttp.server").warning("peer %s misbehaved", target.host)
    out = stream.getvalue()
    assert "probe_detail" in out and "probe_crashed" in out and "misbehaved" in out
    assert PRIVATE_HOST not in out
    assert out.count(rwlog.REDACTED) >= 4


def test_configured_secret_is_redacted_and_set_follows_reload(tmp_path: Path, stream: io.StringIO) -> None:
    rwlog.configure("info", "json", stream)
    rwlog.update_redaction(_loaded(tmp_path, 1))  # type: ignore[arg-type]
    log = structlog.get_logger("test")
    log.info("auth", header="Basic hunter2-very-secret")
    rwlog.update_redaction(_loaded(tmp_path, 1, secret="new-password-42"))  # type: ignore[arg-type]
    log.info("auth", header="Basic new-password-42")
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [x["header"] for x in lines] == ["Basic [redacted]", "Basic [redacted]"]
    assert all(x["level"] == "info" and "timestamp" in x for x in lines)


def test_a_line_of_a_large_secret_file_past_64_kib_is_redacted(tmp_path: Path, stream: io.StringIO) -> None:
    """Probes may read secret files up to config.secrets' 1 MiB limit; redaction must see all of it."""
    late_line = "bridge-line-deep-in-a-large-secret-file-0123456789"
    loaded = _loaded(tmp_path, 1, secret="#\n" * 60_000 + late_line)  # the line starts past 117 KiB
    assert (tmp_path / "ref.pass").stat().st_size > 100 * 1024
    rwlog.configure("info", "json", stream)
    rwlog.update_redaction(loaded)  # type: ignore[arg-type]
    structlog.get_logger("test").info("tor_bridge", line=f"Bridge {late_line}")
    assert json.loads(stream.getvalue())["line"] == f"Bridge {rwlog.REDACTED}"


def test_public_target_host_is_not_redacted(tmp_path: Path, stream: io.StringIO) -> None:
    rwlog.configure("info", "console", stream)
    rwlog.update_redaction(_loaded(tmp_path, 1))  # type: ignore[arg-type]
    structlog.get_logger("t").info("verdict_changed", target="public-site", host="localhost")
    assert "localhost" in stream.getvalue()


def test_info_level_hides_per_probe_debug_lines(stream: io.StringIO) -> None:
    rwlog.configure("info", "console", stream)
    log = structlog.get_logger("t")
    log.debug("probe_result", target="x")
    log.info("verdict_changed", target="x", verdict="blocked")
    out = stream.getvalue()
    assert "verdict_changed" in out and "probe_result" not in out


def test_a_library_logger_with_its_own_low_level_cannot_leak_debug_lines(stream: io.StringIO) -> None:
    """stem sets its logger to TRACE and logs SETCONF commands (whole bridge lines) at DEBUG."""
    rwlog.configure("info", "json", stream)
    stem_log = logging.getLogger("stem")
    stem_log.setLevel(5)  # what stem does on import
    rwlog.configure("info", "json", stream)  # the daemon configures after stem was imported
    stem_log.debug('Sending: SETCONF Bridge="obfs4 192.0.2.7:443 4C2F..."')
    logging.getLogger("other.lib").setLevel(logging.DEBUG)
    logging.getLogger("other.lib").debug("other library chatter")
    stem_log.warning("tor process exited")
    out = stream.getvalue()
    assert "192.0.2.7" not in out and "chatter" not in out
    assert "tor process exited" in out
