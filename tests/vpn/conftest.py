"""Real VPN servers for the VPN probe tests: openvpn on 127.0.0.1; wireguard-go and charon in a netlab.

PKI and keys are generated once per session with openssl / ``openvpn --genkey``. The openvpn server runs in
point-to-point TLS mode with ``--dev null`` (``--mode server`` insists on a tun device); it speaks the same
control-channel protocol, including the stateless-reset behaviour of the handshake we probe. Ports are
ephemeral; every process is killed at teardown.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reachwatch.model import ProbeResult
from reachwatch.probes.base import ProbeContext
from tests.netlab import Lab


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*cmd: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(c) for c in cmd], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ctx(name: str = "t", timeout: float = 3.0, base_dir: Path | None = None) -> ProbeContext:
    return ProbeContext(target=name, kind="test", timeout=timeout, base_dir=base_dir or Path.cwd())


@dataclass
class Pki:
    dir: Path

    def __getattr__(self, name: str) -> Path:
        return self.dir / name.replace("_", ".", 1)


def make_pki(d: Path) -> Pki:
    """CA, server and client certs (ECDSA P-256), static keys, tls-crypt-v2 server and client keys."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=rw-test-ca", cwd=d)  # fmt: skip
    for who in ("server", "client"):
        run("openssl", "req", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr", "-subj", f"/CN={who}",
            cwd=d)  # fmt: skip
        run("openssl", "x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{who}.crt", "-days", "2", cwd=d)  # fmt: skip
    run("openvpn", "--genkey", "secret", "ta.key", cwd=d)
    run("openvpn", "--genkey", "secret", "other.key", cwd=d)
    run("openvpn", "--genkey", "tls-crypt-v2-server", "v2s.key", cwd=d)
    run("openvpn", "--tls-crypt-v2", "v2s.key", "--genkey", "tls-crypt-v2-client", "v2c.key", cwd=d)
    run("openvpn", "--genkey", "tls-crypt-v2-server", "v2s-other.key", cwd=d)
    run("openvpn", "--tls-crypt-v2", "v2s-other.key", "--genkey", "tls-crypt-v2-client", "v2c-other.key",
        cwd=d)  # fmt: skip
    for f in d.iterdir():
        f.chmod(0o600)
    return Pki(d)


@pytest.fixture(scope="session")
def ovpn_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openvpn") is None:
        pytest.skip("openvpn not installed")
    return make_pki(tmp_path_factory.mktemp("ovpn-pki"))


@dataclass
class OvpnServer:
    proc: subprocess.Popen[bytes]
    port: int
    proto: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_openvpn_server(
    pki: Pki, workdir: Path, proto: str, extra: list[str], *, netns: str | None = None,
    local: str = "127.0.0.1", port: int | None = None, multi: bool = False,
) -> OvpnServer:  # fmt: skip
    """A real openvpn TLS server (p2p, ``--dev null``); returns once it listens."""
    port = port or free_port(socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    log = workdir / f"openvpn-{proto}-{port}.log"
    # p2p "--dev null --tls-server" serves one peer at a time; "--server" (needs a tun device, so only
    # inside a namespace) is the multi-client mode with OpenVPN 2.6's stateless reset handling
    mode = (
        ["--dev", "tun", "--server", "10.231.0.0", "255.255.255.0"]
        if multi
        else ["--dev", "null", "--tls-server"]
    )
    cmd = [
        "openvpn", *mode, "--local", local, "--port", str(port),
        "--proto", "tcp-server" if proto == "tcp" else "udp",
        "--ca", str(pki.ca_crt), "--cert", str(pki.server_crt), "--key", str(pki.server_key),
        "--dh", "none", "--verb", "3", "--ping", "1", "--ping-restart", "30", "--log", str(log),
        *extra,
    ]  # fmt: skip
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = OvpnServer(proc, port, proto, log)
    ready = "Initialization Sequence Completed" if multi else "link local (bound)"
    if proto == "tcp" and not multi:
        ready = "Listening for incoming TCP connection"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if log.exists() and ready in log.read_text(errors="replace"):
            return server
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    server.stop()
    text = log.read_text(errors="replace") if log.exists() else ""
    raise RuntimeError(f"openvpn server did not start: {text[-2000:]}")


@pytest.fixture
def openvpn_server(ovpn_pki: Pki, tmp_path: Path) -> Iterator[object]:
    """Factory: ``openvpn_server(proto, extra_args)`` -> a running server, stopped at teardown."""
    servers: list[OvpnServer] = []

    def factory(proto: str, extra: list[str] | None = None, **kw: object) -> OvpnServer:
        s = start_openvpn_server(ovpn_pki, tmp_path, proto, extra or [], **kw)  # type: ignore[arg-type]
        servers.append(s)
        return s

    yield factory
    for s in servers:
        s.stop()


@pytest.fixture(autouse=True)
def _umask() -> Iterator[None]:
    old = os.umask(0o077)
    yield
    os.umask(old)


# -- network-namespace lab: probes run in the client ns, servers in the server ns -----------------------

REPO = Path(__file__).resolve().parents[2]
PYTHON = Path(sys.executable)  # the interpreter running the tests, with reachwatch importable

UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, addr = s.recvfrom(2048)
    s.sendto(data, addr)
"""


class NsProber:
    """A long-lived probe worker (``tests.vpn.nsprobe``) inside a namespace; one process for many probes.

    ``argv`` replaces the command that starts it (see ``unprivileged_prober``)."""

    def __init__(self, ns: Any, cwd: Path, argv: Sequence[str] = (), pythonpath: str = str(REPO)) -> None:
        self.proc = ns.popen(
            list(argv) or [str(PYTHON), "-m", "tests.vpn.nsprobe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: select() must see every line that readline() has not consumed
            cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": pythonpath},
        )
        self.cwd = cwd

    def probe(self, kind: str, target: dict[str, Any], timeout: float = 3.0) -> ProbeResult:
        req = {"kind": kind, "target": {"kind": kind, **target}, "timeout": timeout}
        return self.probe_request(req, timeout)

    def probe_request(self, req: dict[str, Any], timeout: float) -> ProbeResult:
        """One request as ``tests.vpn.nsprobe`` reads it (e.g. with a ``tor`` service)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout + 10
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "probe worker hung"
            line = self.proc.stdout.readline()
            assert line, "probe worker died"
            if line.startswith(b"RESULT "):
                return ProbeResult.from_dict(json.loads(line[7:]))

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


UNPRIVILEGED_UID = 65534  # nobody


def unprivileged_home() -> Path:
    """A directory the unprivileged prober owns, outside root's 0700 pytest tree (caller removes it)."""
    home = Path(tempfile.mkdtemp(prefix="rw-unpriv-"))
    home.chmod(0o755)
    os.chown(home, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
    return home


def unprivileged_prober(lab: Lab, home: Path) -> NsProber:
    """A probe worker as the shipped unit runs the daemon: a non-root user with no capability at all
    (empty bounding set, no new privileges). Two things differ from a stock Debian host and are set up for
    this process only, in a private mount namespace: ``/dev/net/tun`` is 0666 there (as Debian's udev
    rule makes it; this machine has 0600), and the interpreter is the system's ``/usr/bin/python3`` with
    the packages of the environment running the suite (a venv's own interpreter lives under root's home)."""
    tun = home / "tun"
    os.mknod(tun, 0o666 | stat.S_IFCHR, os.makedev(10, 200))
    tun.chmod(0o666)
    # the packages of the environment running the suite (a venv, tox, a distro build), never a fixed path
    paths = sysconfig.get_paths()
    site = ":".join(dict.fromkeys((paths["purelib"], paths["platlib"])))
    drop = [
        "setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}", "--clear-groups",
        "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs",
    ]  # fmt: skip
    run_as = " ".join(["exec", *drop, "/usr/bin/python3", "-m", "tests.vpn.nsprobe"])
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f"mount --bind {tun} /dev/net/tun && {run_as}"]  # fmt: skip
    return NsProber(lab.client, home, argv, pythonpath=f"{site}:{REPO / 'daemon'}:{REPO}")


@pytest.fixture
def prober(lab: Lab, tmp_path: Path) -> Iterator[NsProber]:
    """A probe worker in the lab's client namespace ("inside the country")."""
    worker = NsProber(lab.client, tmp_path)
    yield worker
    worker.close()


@pytest.fixture
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with Lab("vpn") as the_lab:
        yield the_lab


TCP_ECHO = """
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
def serve(c):
    while data := c.recv(65536):
        c.sendall(data)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def start_tcp_echo(lab: Lab, ip: str, port: int) -> None:
    """A TCP echo (the operator's canary) in the server ns."""
    lab.server.popen(["python3", "-c", TCP_ECHO, ip, str(port)])
    wait_tcp_listen(lab.server, port)


def start_udp_echo(lab: Lab, ip: str, port: int) -> None:
    """A UDP echo in the server ns: the same-path control for the censor tests."""
    lab.server.popen(["python3", "-c", UDP_ECHO, ip, str(port)])
    wait_udp_listen(lab.server, port)


def wait_udp_listen(ns: Any, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = ns.run(["ss", "-Hulpn", f"sport = :{port}"], check=False).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on udp port {port}")


def wait_tcp_listen(ns: Any, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ns.run(["ss", "-Htln", f"sport = :{port}"], check=False).stdout.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on tcp port {port}")


OCSERV_GATEWAY = "192.168.99.1"  # ocserv's own address on its tun devices: the first of its ipv4-network


def ocserv_config(tmp: Path, host: str, port: int, cert: Path, key: Path) -> Path:
    """``tmp/ocserv.conf`` for ocserv on ``host``:``port`` with plain password auth and the account
    ``probe`` (password ``pw``, in ``tmp/ocpasswd``). Bans are off so repeated probes stay welcome; one
    config for every ocserv the tests start (the proxy, VPN and usable-matrix labs)."""
    passwd = tmp / "ocpasswd"
    account = ["ocpasswd", "-c", str(passwd), "probe"]
    subprocess.run(account, input=b"pw\npw\n", check=True, capture_output=True)
    conf = tmp / "ocserv.conf"
    conf.write_text(
        f"""auth = "plain[passwd={passwd}]"
tcp-port = {port}
listen-host = {host}
socket-file = {tmp / "ocserv.sock"}
server-cert = {cert}
server-key = {key}
pid-file = {tmp / "ocserv.pid"}
isolate-workers = false
use-occtl = false
max-clients = 16
max-same-clients = 0
max-ban-score = 0
device = vpns
ipv4-network = 192.168.99.0/24
"""
    )
    return conf


@dataclass
class WgServer:
    port: int
    public_key: str
    client_key_file: Path
    client_public: str
    psk_file: Path | None


WG_SERVER_INSIDE, WG_PEER_INSIDE = "10.77.0.1", "10.77.0.2"


def start_wireguard(lab: Lab, workdir: Path, *, psk: bool = False, port: int = 51820) -> WgServer:
    """wireguard-go in the server ns with one registered peer: the probe's own key."""
    ifname = f"wg{lab.suffix}"[:15]
    lab.server.popen(["wireguard-go", "-f", ifname], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def genkey(name: str) -> tuple[Path, str]:
        key = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
        path = workdir / name
        path.write_text(key)
        path.chmod(0o600)
        pub = subprocess.run(["wg", "pubkey"], input=key, capture_output=True, text=True, check=True).stdout
        return path, pub.strip()

    server_key, server_pub = genkey("wg-server.key")
    client_key, client_pub = genkey("wg-client.key")
    psk_file = None
    peer = ["peer", client_pub, "allowed-ips", "10.77.0.2/32"]
    if psk:
        psk_file = workdir / "wg-psk.key"
        key = subprocess.run(["wg", "genpsk"], capture_output=True, text=True, check=True).stdout
        psk_file.write_text(key)
        psk_file.chmod(0o600)
        peer += ["preshared-key", str(psk_file)]
    deadline = time.monotonic() + 10
    while lab.server.run(["ip", "link", "show", ifname], check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("wireguard-go did not create its interface")
        time.sleep(0.05)
    lab.server.run(["wg", "set", ifname, "private-key", str(server_key), "listen-port", str(port), *peer])
    # the server's tunnel address: its kernel answers the data stage's echoes from the probe peer's 10.77.0.2
    lab.server.run(["ip", "addr", "add", f"{WG_SERVER_INSIDE}/24", "dev", ifname])
    lab.server.run(["ip", "link", "set", ifname, "up"])
    wait_udp_listen(lab.server, port)
    return WgServer(port, server_pub, client_key, client_pub, psk_file)


CHARON_INSIDE = "10.77.0.1"  # local_ts of charon's CHILD_SA; virtual addresses come from 10.78.0.0/28
# charon's plugins, named so that installing more (libcharon-extra-plugins brings dozens) changes nothing;
# ESP is done by kernel-libipsec (user space, a TUN device in the server ns): this machine's kernel has no
# ESP (CONFIG_INET_ESP unset), and the probe must not care which of the two the responder uses
CHARON_PLUGINS = (
    "charon-systemd aes sha2 sha1 md5 mgf1 random nonce x509 revocation constraints pubkey pkcs1 pem pkcs8 "
    "fips-prf gmp xcbc hmac kdf drbg attr kernel-libipsec kernel-netlink socket-default vici updown counters"
)
STRONGSWAN_CONF = """charon-systemd {{
  load = {plugins}
  cookie_threshold = {cookie_threshold}
  cookie_threshold_ip = {cookie_threshold_ip}
  block_threshold = {block_threshold}
  install_routes = no
  filelog {{
    test {{
      path = {dir}/charon.log
      default = 1
      flush_line = yes
    }}
  }}
  journal {{
    default = -1
  }}
  plugins {{
    vici {{
      socket = unix://{dir}/charon.vici
    }}
  }}
}}
"""

SWANCTL_CONF = """connections {{
  probe {{
    version = 2
    proposals = {proposals}
    pools = probe-pool
    local {{
      auth = psk
      id = server
    }}
    remote {{
      auth = psk
    }}
    children {{
      inside {{
        local_ts = {inside}/32
      }}
    }}
  }}
}}
pools {{
  probe-pool {{
    addrs = 10.78.0.0/28
  }}
}}
secrets {{
  ike-1 {{
    secret = "test-only-secret"
  }}
}}
"""


def start_charon(
    lab: Lab,
    workdir: Path,
    *,
    proposals: str = "aes256-sha256-modp2048",
    cookie_threshold: int = 0,
    cookie_threshold_ip: int = 3,  # strongSwan's default: half-open SAs from one address before cookies
    block_threshold: int = 5,  # strongSwan's default: half-open IKE_SAs allowed per peer address
) -> Path:
    """strongSwan's charon (charon-systemd) in the server ns, ports 500/4500, one PSK connection whose
    CHILD_SA reaches ``CHARON_INSIDE`` and hands out a virtual address.

    Debian's strongswan here has no openssl plugin, so MODP groups (gmp) are what the responder can do;
    that is also what makes the INVALID_KE_PAYLOAD test work (we offer ECP-256 first).
    """
    if shutil.which("charon-systemd") is None:
        pytest.skip("charon-systemd not installed")
    d = workdir / f"charon-{lab.suffix}"
    d.mkdir()
    (d / "strongswan.conf").write_text(
        STRONGSWAN_CONF.format(
            dir=d,
            plugins=CHARON_PLUGINS,
            cookie_threshold=cookie_threshold,
            cookie_threshold_ip=cookie_threshold_ip,
            block_threshold=block_threshold,
        )
    )
    (d / "swanctl.conf").write_text(SWANCTL_CONF.format(proposals=proposals, inside=CHARON_INSIDE))
    # the CHILD_SA's inside: an address of the server's own that answers the data stage's echoes
    lab.server.run(f"ip addr add {CHARON_INSIDE}/32 dev lo")
    env = {**os.environ, "STRONGSWAN_CONF": str(d / "strongswan.conf")}
    lab.server.popen(["charon-systemd"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (d / "charon.vici").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("charon did not start")
        time.sleep(0.05)
    lab.server.run(
        ["swanctl", "--load-all", "--file", str(d / "swanctl.conf"), "--uri", f"unix://{d}/charon.vici"]
    )
    wait_udp_listen(lab.server, 500)
    return d


class _Hostile(asyncio.DatagramProtocol):
    def __init__(self, reply: Callable[[bytes], list[bytes]]) -> None:
        self.reply = reply
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        for out in self.reply(data):
            self.transport.sendto(out, addr)


@asynccontextmanager
async def hostile_udp(reply: Callable[[bytes], list[bytes]]) -> AsyncIterator[int]:
    """A UDP peer on 127.0.0.1 answering each datagram with ``reply(datagram)``: forged or garbage replies."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Hostile(reply), local_addr=("127.0.0.1", 0))
    try:
        yield int(transport.get_extra_info("sockname")[1])
    finally:
        transport.close()
