"""The container files, validated without a Docker engine (none runs on the build machine).

What is checked: the Dockerfile runs as a non-root user with a health check on the daemon's own endpoint;
every file the compose stack mounts exists in the repository; the Prometheus config it mounts passes
`promtool check config` with the shipped rule files. What cannot be checked here: building the image and
starting the stack (see the notes in deploy/docker and the issue note).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"


def test_dockerfile_runs_unprivileged_with_healthcheck_and_multiarch_base() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines()]
    users = [ln for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] != "USER root"
    assert any(ln.startswith("HEALTHCHECK") for ln in lines)
    assert any("/-/healthy" in ln for ln in lines)
    # debian:bookworm-slim is published for amd64, arm64 and arm/v7 (Raspberry Pi)
    assert [ln for ln in lines if ln.startswith("FROM ")] == ["FROM debian:bookworm-slim"]
    assert any("obfs4proxy" in ln and "snowflake-client" in ln for ln in lines)


def test_dockerfile_needs_no_compiler_on_the_platforms_it_names() -> None:
    """No compiler in the image: the Debian route's compiled packages from apt, the rest as wheels only.
    The armv7 and arm64 wheel resolution itself is tested against the bundle (test_bundle.py)."""
    text = (DOCKER / "Dockerfile").read_text()
    debian = [
        line.split()[1]
        for line in (REPO / "deploy" / "debian-python.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(package in text for package in debian), debian
    assert "--only-binary=:all:" in text and "--system-site-packages" in text
    for compiler in ("gcc", "build-essential", "python3-dev"):
        assert compiler not in text
    advertised = set(re.findall(r"linux/[a-z0-9/]+", text))
    assert advertised == {"linux/amd64", "linux/arm64", "linux/arm/v7"}


def test_every_bind_mount_of_the_compose_stack_exists() -> None:
    """Except the vantage's config, which is the operator's (written by `reachwatch init`, documented
    at the top of compose.yml, never a sample copied into place)."""
    text = (DOCKER / "compose.yml").read_text()
    compose = yaml.safe_load(text)
    missing = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source == "./config.yaml":
                assert "init --country" in text and "> deploy/docker/config.yaml" in text
                continue
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
