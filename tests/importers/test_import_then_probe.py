"""End to end: links imported without copying secrets, loaded by the config loader, then probed against
real servers (microsocks with auth, ss-server) with credentials read from the user's own file."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from reachwatch.config.load import parse_config
from reachwatch.importers import import_files
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe
from tests.proxy.conftest import echo_canary, microsocks, secret_file, ss_server
from tests.servers import LOOPBACK

pytestmark = pytest.mark.slow


async def test_imported_links_probe_successfully_with_keys_left_in_the_links_file(tmp_path: Path) -> None:
    userinfo = base64.urlsafe_b64encode(b"aes-256-gcm:ss key").decode().rstrip("=")
    async with echo_canary() as canary:
        with microsocks("probe", "s0cks") as socks_port, ss_server("aes-256-gcm", "ss key") as ss_port:
            links = secret_file(
                tmp_path,
                "links.txt",
                f"socks5://probe:s0cks@{LOOPBACK}:{socks_port}#socks\nss://{userinfo}@{LOOPBACK}:{ss_port}#ss\n",
            )
            text = import_files([str(links)], canary=f"{LOOPBACK}:{canary}")
            assert "s0cks" not in text and "ss key" not in text
            config = parse_config(text, "imported.yaml", tmp_path).config
            results = []
            for target in config.targets:
                ctx = ProbeContext(target=target.name, kind=target.kind, timeout=5.0, base_dir=tmp_path)
                results.append(await run_probe(PROBES[target.kind], target, ctx))
    assert [(r.target, r.success) for r in results] == [("socks", True), ("ss", True)], results
