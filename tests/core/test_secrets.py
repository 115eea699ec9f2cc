"""config.secrets: what a secret file may be. Bounded reads, and nothing a read could block on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reachwatch.config.secrets import MAX_SECRET_BYTES, read_secret, read_secret_file
from reachwatch.errors import ConfigError


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
