"""config.secrets: what a secret file may be (bounded reads, nothing a read could block on), and secrets
as types: which fields hold one, as the loader, the redactor and the docs read it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reachwatch.config.load import parse_config
from reachwatch.config.secrets import (
    MAX_SECRET_BYTES,
    FileKind,
    field_kind,
    file_fields,
    read_secret,
    read_secret_file,
)
from reachwatch.errors import ConfigError
from tests.core.configmodels import config_models


def test_a_private_file_is_read_and_stripped_as_text(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("s3cret\n")
    (tmp_path / "p").chmod(0o600)
    assert read_secret("p", None, tmp_path, "password_file") == "s3cret"


def test_a_secret_file_larger_than_the_bound_is_refused_not_read_whole(tmp_path: Path) -> None:
    big = tmp_path / "disk.img"
    with big.open("wb") as fh:
        fh.truncate(MAX_SECRET_BYTES + 1)
    big.chmod(0o600)
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        read_secret_file(str(big), tmp_path, "password_file")


def test_a_fifo_is_refused_instead_of_blocking_the_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_secret_file(str(fifo), tmp_path, "password_file")


# --- secrets are types: every path or variable-name field says what it holds ------------------------


def test_every_file_or_variable_field_is_declared_secret_or_public() -> None:
    # the name is not the rule (the walker reads the type): this stops a new field slipping by undecided
    undecided = [
        f"{model.__name__}.{name}"
        for model in config_models()
        for name, info in model.model_fields.items()
        if name.endswith(("_file", "_env")) and field_kind(info) is None
    ]
    assert undecided == []


def test_the_walker_names_each_set_field_with_its_kind(tmp_path: Path) -> None:
    text = """
reference_vantages:
  - {name: ref, url: "https://ref.example/", username: u, password_env: REF_PASS, ca_file: ca.pem}
targets:
  - {name: t, kind: openvpn_tunnel, host: h, config_file: c.ovpn}
  - {name: p, kind: socks5, host: h, port: 1, url_file: proxies.txt}
web: {config_file: web.yml}
"""
    loaded = parse_config(text, "c.yaml", tmp_path)
    assert [(f.path, f.kind, f.value) for f in file_fields(loaded.config)] == [
        ("reference_vantages[0] (name 'ref').password_env", FileKind.SECRET_ENV, "REF_PASS"),
        ("reference_vantages[0] (name 'ref').ca_file", FileKind.PUBLIC_FILE, "ca.pem"),
        ("targets[0] (name 't').config_file", FileKind.SECRET_FILE, "c.ovpn"),
        ("targets[1] (name 'p').url_file", FileKind.SECRET_FILE, "proxies.txt"),
        ("web.config_file", FileKind.PUBLIC_FILE, "web.yml"),
    ]


def test_validate_refuses_a_group_readable_ovpn_with_one_line(tmp_path: Path) -> None:
    # an .ovpn carries inline keys: the loader treats it as the secret it is (it was accepted, and every
    # attempt then ended internal_error when the probe checked it)
    ovpn = tmp_path / "client.ovpn"
    ovpn.write_text("client\n<tls-crypt>\n-----BEGIN OpenVPN Static key V1-----\n</tls-crypt>\n")
    ovpn.chmod(0o640)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("targets:\n  - {name: vpn, kind: openvpn_tunnel, host: h, config_file: client.ovpn}\n")
    cfg.chmod(0o600)
    proc = subprocess.run(
        [sys.executable, "-m", "reachwatch", "validate", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"reachwatch: {cfg}: targets[0] (name 'vpn').config_file: secret file {ovpn} is readable by group "
        "or others (mode 640); chmod 600 it\n"
    )
    ovpn.chmod(0o600)
    validate = [sys.executable, "-m", "reachwatch", "validate", str(cfg)]
    assert subprocess.run(validate, capture_output=True, check=False).returncode == 0
