"""The container files, validated without a Docker engine (none runs on the build machine).

What is checked: the Dockerfile runs as a non-root user with a health check on the daemon's own endpoint;
every file the compose stack mounts exists in the repository; the Prometheus config it mounts passes
`promtool check config` with the shipped rule files. What cannot be checked here: building the image and
starting the stack (see the notes in deploy/docker and the issue note).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"


def test_dockerfile_runs_unprivileged_with_healthcheck_and_multiarch_base() -> None:
    lines = [ln.strip() for ln in (DOCKER / "Dockerfile").read_text().splitlines()]
    users = [ln for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] != "USER root"
    assert any(ln.startswith("HEALTHCHECK") for ln in lines)
    assert any("/-/healthy" in ln for ln in lines)
    # python:*-slim-bookworm is published for amd64, arm64 and arm/v7 (Raspberry Pi)
    assert all("slim-bookworm" in ln for ln in lines if ln.startswith("FROM "))
    assert any("obfs4proxy" in ln and "snowflake-client" in ln for ln in lines)


def test_every_bind_mount_of_the_compose_stack_exists() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yml").read_text())
    missing = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(".") and not (DOCKER / source).resolve().exists():
                missing.append(f"{name}: {source}")
    assert not missing, missing


def test_compose_publishes_ports_on_loopback_only() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yml").read_text())
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_compose_prometheus_config_and_mounted_rules_pass_promtool(tmp_path: Path) -> None:
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    rules_dir = REPO / "deploy" / "prometheus" / "rules"
    config["rule_files"] = [str(rules_dir / "*.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    out = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
