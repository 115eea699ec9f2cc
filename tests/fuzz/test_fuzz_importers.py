"""Every importer on generated files: YAML, or one line naming the file; no password from the input in
either, and with an output directory nothing outside it is touched."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st

from reachwatch.errors import ConfigError
from reachwatch.importers import import_files

from . import one_line

# the password of one example, the same wherever it appears, which the output must never show (hex: no
# format mangles it into something else)
_HEX = st.text(alphabet="0123456789abcdef", min_size=12, max_size=16)
SECRETS = st.shared(_HEX.map(lambda h: f"Pw{h}"), key="pw")

# mostly plausible values (to reach deep into each parser), sometimes anything
HOSTS = st.sampled_from(["vpn.example.net", "198.51.100.7", "2001:db8::1", "[2001:db8::1]"])
HOSTS |= st.sampled_from(["", "a b", "x:y", "-", "http://x/"]) | st.text(max_size=12)
PORTS = st.integers(min_value=1, max_value=65535).map(str)
PORTS |= st.integers(min_value=-5, max_value=70000).map(str) | st.sampled_from(["", "x", "1e3", "٤٤٣"])
JUNK = st.text(max_size=40)


def wg_key(secret: str) -> str:
    """The example's secret as a WireGuard key (base64 of 32 bytes)."""
    return base64.b64encode(secret.encode().ljust(32, b"0")[:32]).decode()


def _lines(*options: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Lines from ``options``; one example in five also gets a few arbitrary lines."""
    clean = st.lists(st.one_of(*options), max_size=10)
    noisy = st.lists(st.one_of(*options), max_size=8).flatmap(
        lambda lines: st.lists(JUNK, min_size=1, max_size=3).map(lambda junk: lines + junk)
    ).flatmap(st.permutations)
    return st.one_of(clean, clean, clean, clean, noisy).map("\n".join)


OVPN = _lines(
    st.builds(lambda h, p, t: f"remote {h} {p} {t}", HOSTS, PORTS, st.sampled_from(["udp", "tcp", "quic"])),
    st.sampled_from(["proto tcp", "proto udp", "port 443", "key-direction 1", "auth SHA256"]),
    st.just("tls-auth ta.key 1"),
    st.builds(
        lambda tag, body: f"<{tag}>\n{body}\n</{tag}>",
        st.sampled_from(["tls-auth", "tls-crypt", "tls-crypt-v2", "ca", "connection"]),
        JUNK,
    ),
    st.just("-----BEGIN OpenVPN Static key V1-----"),
)
PEER = st.builds(
    lambda pub, endpoint, psk: f"[Peer]\nPublicKey = {pub}\n{endpoint}{psk}",
    st.just(base64.b64encode(bytes(range(32))).decode()) | JUNK,
    st.builds(lambda h, p: f"Endpoint = {h}:{p}\n", HOSTS, PORTS) | st.just(""),
    SECRETS.map(lambda s: f"PresharedKey = {wg_key(s)}\n") | st.just(""),
)
WGQUICK = st.builds(
    lambda key, peers: f"[Interface]\nPrivateKey = {key}\nAddress = 10.0.0.2/32\n{peers}",
    SECRETS.map(wg_key) | SECRETS,
    st.lists(PEER, max_size=3).map("\n".join),
)
LINKS = _lines(
    st.builds(
        lambda m, pw, h, p: f"ss://{base64.urlsafe_b64encode(f'{m}:{pw}'.encode()).decode()}@{h}:{p}",
        st.sampled_from(["chacha20-ietf-poly1305", "aes-256-gcm", "2022-blake3-aes-128-gcm", "rc4-md5", ""]),
        SECRETS,
        HOSTS,
        PORTS,
    ),
    st.builds(lambda m, pw, h, p: f"ss://{m}:{pw}@{h}:{p}", st.text(max_size=8), SECRETS, HOSTS, PORTS),
    st.builds(
        lambda s, pw, h, p: f"{s}://user:{pw}@{h}:{p}",
        st.sampled_from(["socks5", "socks5h", "http", "https", "socks4"]),
        SECRETS,
        HOSTS,
        PORTS,
    ),
    st.just("# a comment"),
)
VPNGATE = st.builds(
    lambda rows: "*vpn_servers\n#HostName,IP,Score,CountryShort,OpenVPN_ConfigData_Base64\n" + rows + "\n*\n",
    st.lists(
        st.builds(
            lambda n, c, cfg: f"{n},198.51.100.1,1,{c},{base64.b64encode(cfg.encode()).decode()}",
            st.text(alphabet="abc-,\"", max_size=8),
            st.text(max_size=3),
            OVPN,
        )
        | JUNK,
        max_size=4,
    ).map("\n".join),
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)
RISEUP = st.builds(
    lambda gws: json.dumps({"gateways": gws}),
    st.lists(
        st.fixed_dictionaries(
            {"ip_address": st.sampled_from(["198.51.100.9", "2001:db8::9", ""]) | JSONISH},
            optional={
                "host": JSONISH,
                "location": JSONISH,
                "capabilities": st.fixed_dictionaries(
                    {},
                    optional={
                        "transport": st.lists(
                            st.just("openvpn")
                            | st.fixed_dictionaries(
                                {"type": st.just("openvpn") | JSONISH},
                                optional={"protocols": JSONISH, "ports": JSONISH},
                            )
                            | JSONISH,
                            max_size=3,
                        )
                        | JSONISH,
                        "protocols": JSONISH,
                        "ports": JSONISH,
                    },
                )
                | JSONISH,
            },
        )
        | JSONISH,
        max_size=3,
    ),
)
FILES = st.one_of(
    st.tuples(st.just("c.ovpn"), OVPN),
    st.tuples(st.just("wg0.conf"), WGQUICK),
    st.tuples(st.just("links.txt"), LINKS),
    st.tuples(st.just("vpngate.csv"), VPNGATE),
    st.tuples(st.just("eip-service.json"), RISEUP),
    st.tuples(st.sampled_from(["x.ovpn", "x.conf", "x.txt", "x.json"]), JUNK),
)


@given(FILES, SECRETS)
def test_an_imported_file_is_yaml_or_one_line_and_shows_no_password(
    file: tuple[str, str], secret: str
) -> None:
    name, text = file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        path.chmod(0o600)
        out = Path(tmp) / "secrets"
        try:
            document = import_files([str(path)], output_dir=str(out), canary="127.0.0.1:7")
        except ConfigError as exc:
            message = str(exc)
            assert one_line(message) and message.startswith((str(path), "--output-dir", "canary")), message
            shown = message
            event(f"{name}: refused")
        else:
            shown = document
            event(f"{name}: imported")
        assert secret not in shown and wg_key(secret) not in shown, (secret, shown)
        assert {p.name for p in Path(tmp).iterdir()} <= {name, "secrets"}  # nothing written elsewhere
