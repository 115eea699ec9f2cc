"""What the command line imports: ``--help`` nothing of reachwatch but the CLI, ``validate`` the config layer
only, even for a config that uses every kind (each command imports what it needs when it runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reachwatch.config.dirauths import DIRECTORY_AUTHORITIES
from reachwatch.config.targets import TARGET_MODELS

# run the real entry point (python -m reachwatch) and write the modules it loaded, however it exits
DUMP = """
import atexit, json, runpy, sys
out = sys.argv[1]
sys.argv = ["reachwatch", *sys.argv[2:]]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
runpy.run_module("reachwatch", run_name="__main__", alter_sys=True)
"""
# the layers validate must not load, and the protocol libraries only probes need
NOT_FOR_VALIDATE = (
    "reachwatch.probes",
    "reachwatch.net",
    "reachwatch.tor",
    "reachwatch.vpn",
    "reachwatch.formats",
)
PROTOCOL_LIBRARIES = ("stem", "dns", "h11")

FP = "0123456789ABCDEF0123456789ABCDEF01234567"
EVERY_KIND = f"""
targets:
  - {{name: a-tcp, kind: tcp, host: 192.0.2.1, port: 443}}
  - {{name: a-tls, kind: tls, host: www.example.org}}
  - {{name: a-http, kind: http, url: "http://www.example.org/"}}
  - {{name: a-https, kind: https, url: "https://www.example.org/"}}
  - name: a-dns
    kind: dns
    query: www.example.org
    resolvers: [{{name: udp, udp: 192.0.2.53}}, {{name: doh, doh: "https://dns.example.net/dns-query"}}]
  - {{name: a-throughput, kind: throughput, url: "https://a.example/1M", control_url: "https://b.example/1M"}}
  - {{name: a-relay, kind: tor_relay, host: 192.0.2.2, port: 9001, fingerprint: "{FP}"}}
  - {{name: a-dirport, kind: tor_dirport, host: 192.0.2.2, port: 9030, fingerprint: "{FP}"}}
  - {{name: a-bridge, kind: tor_bridge, bridge: "192.0.2.3:443 {FP}"}}
  - {{name: a-bootstrap, kind: tor_bootstrap}}
  - {{name: a-stun, kind: stun, host: stun.example.net}}
  - {{name: a-fronting, kind: fronting, url: "https://real.example/", front: cdn.example.com}}
  - {{name: a-openvpn, kind: openvpn, host: h4, tls_crypt_file: key.txt, control: {{host: h, port: 9}}}}
  - {{name: a-tunnel, kind: openvpn_tunnel, host: 192.0.2.4, config_file: client.ovpn}}
  - name: a-wg
    kind: wireguard
    host: 192.0.2.5
    public_key: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
    private_key_file: key.txt
  - {{name: a-ike, kind: ikev2, host: 192.0.2.6}}
  - {{name: a-oc, kind: openconnect, host: vpn.example.net, password_file: key.txt, username: u}}
  - name: a-ss
    kind: shadowsocks
    host: 192.0.2.7
    port: 8388
    password_file: key.txt
    canary: {{host: canary.example.org, port: 7}}
  - {{name: a-socks, kind: socks5, host: 192.0.2.8, port: 1080}}
  - {{name: a-proxy, kind: http_proxy, host: 192.0.2.8, port: 3128, url_file: key.txt}}
  - {{name: a-survey, kind: port_survey, host: canary.example.org, secret_file: key.txt}}
tor:
  directory_authorities: true
  relay_sets: [{{name: onionoo, source: relays.json}}]
"""
ONIONOO = {"relays": [{"fingerprint": FP, "or_addresses": ["192.0.2.9:9001"], "flags": ["Guard"]}]}


def _imported(tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    dump = tmp_path / "modules.json"
    proc = subprocess.run(  # noqa: PLW1510 - the caller checks the return code
        [sys.executable, "-c", DUMP, str(dump), *argv], capture_output=True, text=True, timeout=60
    )
    return proc, json.loads(dump.read_text())


def _under(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == r or m.startswith(f"{r}.") for r in roots)]


def test_help_imports_nothing_of_reachwatch_but_the_command_line(tmp_path: Path) -> None:
    proc, modules = _imported(tmp_path, "--help")
    assert proc.returncode == 0 and "validate" in proc.stdout, proc.stderr
    # the package (its entry point runs as __main__), the CLI and the error vocabulary the parser raises
    assert _under(modules, ("reachwatch",)) == ["reachwatch", "reachwatch.cli", "reachwatch.errors"]
    assert _under(modules, ("pydantic", "yaml", "structlog", "aiohttp", *PROTOCOL_LIBRARIES)) == []


def test_validate_of_a_config_with_every_kind_imports_the_config_layer_only(tmp_path: Path) -> None:
    lines = [line.split("kind: ")[1] for line in EVERY_KIND.splitlines() if "kind: " in line]
    kinds = {line.split(",")[0].split("}")[0] for line in lines}
    assert kinds == set(TARGET_MODELS), "add the new kind to EVERY_KIND"
    for name in ("key.txt", "client.ovpn"):
        (tmp_path / name).write_text("socks5://u:p@192.0.2.8:3128\n")
        (tmp_path / name).chmod(0o600)
    (tmp_path / "relays.json").write_text(json.dumps(ONIONOO))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(EVERY_KIND)
    cfg.chmod(0o600)
    proc, modules = _imported(tmp_path, "validate", str(cfg))
    assert proc.returncode == 0, proc.stderr
    # the 20 targets, two per directory authority, the relay set's one relay: all generated and checked
    authorities = 2 * len(DIRECTORY_AUTHORITIES)
    expected = f"OK (targets and controls: {len(TARGET_MODELS) + authorities}, relay set members: 1)"
    assert expected in proc.stdout
    assert _under(modules, NOT_FOR_VALIDATE) == []
    assert _under(modules, PROTOCOL_LIBRARIES) == []


# run in a fresh interpreter: which optional libraries the http probe holds before and after a body that
# needs charset detection (no declared charset, not UTF-8)
DETECTION = """
import json, sys
import reachwatch.probes.http
from reachwatch.formats.blockpage import decode_body
before = "charset_normalizer" in sys.modules
decode_body(bytes(range(0xC0, 0x100)) * 4, None)  # Cyrillic in cp1251: not UTF-8, no charset declared
print(json.dumps([before, "charset_normalizer" in sys.modules]))
"""


def test_charset_detection_is_imported_only_when_a_body_needs_it() -> None:
    """charset-normalizer (~2.7 MB of the daemon's RSS) is the last resort of decoding a body, so the
    http probe loads it on the first body that gets that far, not when the probe is imported."""
    proc = subprocess.run(  # noqa: PLW1510 - checked below
        [sys.executable, "-c", DETECTION], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [False, True]


def test_the_probe_base_every_kind_shares_loads_no_kind_specific_library() -> None:
    """Every daemon imports ``probes.base`` (here through the tls probe), whose ``Services`` hold every
    probe's memories: it must not pull in the WireGuard handshake (``formats.noise``, PyNaCl) or charset
    detection."""
    code = "import json, sys, reachwatch.probes.tls; print(json.dumps([*sys.modules]))"
    proc = subprocess.run(  # noqa: PLW1510 - checked below
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(proc.stdout)
    assert _under(modules, ("nacl", "charset_normalizer", "reachwatch.formats.noise")) == []
