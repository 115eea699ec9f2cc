"""A censored country for the data stage: real ways out abroad, a censor that cuts or shapes them after the
handshake, and three real reachwatch daemons.

Built on ``tests.netlab.Lab``:

- abroad (server ns): microsocks on 198.18.1.2:1080, the operator's echo canary on :7007, wireguard-go on
  :51820 (tunnel address 10.77.0.1, one registered peer per daemon: a peer's endpoint follows its last
  handshake, so daemons must not share one), nothing on :1081 (a dead proxy), and the **reference**: a
  reachwatch listening on 198.18.1.9 (HTTPS, signed answers), probing the same target names;
- on the router (domestic): a TCP listener, the domestic control;
- in the country (client ns): ``kz``, a reachwatch with the reference configured, and ``alone``, the same
  targets without a reference (what an operator without a second vantage sees).

``set_phase``: ``open`` (nothing), ``cut`` (the censor drops the servers' side of a flow once it carried
``CUT_BYTES``: ``ct reply bytes``, TSPU style), ``aged`` (the censor kills every flow to the servers 2 s
after its first packet), ``shaped`` (a token bucket on everything from the server, 1 Mbit/s). The
international control (a TCP connect to the canary port) is left alone, so the vantage stays online and
verdicts can be ``blocked``.

``full=True`` adds the rest of the kinds that carry data (the soak matrix): tinyproxy (``http``),
ss-server (``ss``), openvpn ``--server`` with a tun (``ovpn``: the client in its own namespace, the
canary through the tunnel) and ocserv (``oc``: a login, then ICMP echoes through CSTP).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trustme

from tests.core.censorlab import STATUS_CODE, reference_web, wait_for
from tests.netlab import ROUTER_INNER_IP, SERVER_IP, Lab
from tests.vpn.conftest import (
    OCSERV_GATEWAY,
    TCP_ECHO,
    WG_SERVER_INSIDE,
    OvpnServer,
    make_pki,
    ocserv_config,
    start_openvpn_server,
    start_wireguard,
    wait_tcp_listen,
)

REF_IP = "198.18.1.9"
REF_PORT, KZ_PORT, ALONE_PORT = 10491, 10491, 10492
SOCKS_PORT, DEAD_PORT, CANARY_PORT, DOMESTIC_PORT = 1080, 1081, 7007, 8081
CUT_BYTES = 30_000
VOLUME = 64 * 1024
TARGET_NAMES = ("socks", "socks-dead", "wg")
FULL_NAMES = ("http", "ss", "ovpn", "oc")
HTTP_PORT, SS_PORT, OVPN_PORT, OC_PORT, WG_PORT = 8888, 8388, 1194, 443, 51820
SERVER_PORTS = {"tcp": (SOCKS_PORT, HTTP_PORT, SS_PORT, OC_PORT), "udp": (OVPN_PORT, WG_PORT)}
OVPN_GATEWAY, OC_GATEWAY = "10.231.0.1", OCSERV_GATEWAY
# each daemon's own WireGuard peer: (its address inside the tunnel)
PEERS = {"reference": "10.77.0.2", "kz": "10.77.0.3", "alone": "10.77.0.4"}


class UsableLab:
    """The lab, its servers and the three daemons; ``start()`` once, ``set_phase()`` between assertions."""

    def __init__(self, lab: Lab, workdir: Path, *, full: bool = False) -> None:
        self.lab = lab
        self.dir = workdir
        self.full = full
        self.names = (*TARGET_NAMES, *(FULL_NAMES if full else ()))
        self.ovpn_server: OvpnServer | None = None
        self.phase = ""
        self.ca = trustme.CA()
        self.ca_file = workdir / "ca.pem"
        self.public_key = ""
        self.wg_public = ""
        self.wg_keys: dict[str, Path] = {}

    # -- building ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.lab.server_ip(int(REF_IP.rsplit(".", 1)[1]))
        self._servers()
        self.set_phase("open")
        self._daemon("reference", f"{REF_IP}:{REF_PORT}")
        wait_for(lambda: self._all_measured(self.status("reference")), 60, "the reference's first results")
        self._daemon("kz", f"127.0.0.1:{KZ_PORT}")
        self._daemon("alone", f"127.0.0.1:{ALONE_PORT}")

    def _servers(self) -> None:
        server = self.lab.server
        server.popen(
            ["microsocks", "-i", SERVER_IP, "-p", str(SOCKS_PORT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server.popen(["python3", "-c", TCP_ECHO, "0.0.0.0", str(CANARY_PORT)])
        self.lab.router.popen(["python3", "-c", TCP_ECHO, ROUTER_INNER_IP, str(DOMESTIC_PORT)])
        wait_tcp_listen(server, SOCKS_PORT)
        wait_tcp_listen(server, CANARY_PORT)
        wait_tcp_listen(self.lab.router, DOMESTIC_PORT)
        wg = start_wireguard(self.lab, self.dir)  # its one peer is the reference's
        self.wg_public = wg.public_key
        self.wg_keys["reference"] = wg.client_key_file
        ifname = f"wg{self.lab.suffix}"[:15]
        server.run(["wg", "set", ifname, "peer", wg.client_public, "allowed-ips", f"{PEERS['reference']}/32"])
        for name in ("kz", "alone"):
            key = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
            path = self.dir / f"wg-{name}.key"
            path.write_text(key)
            path.chmod(0o600)
            public = subprocess.run(["wg", "pubkey"], input=key, capture_output=True, text=True, check=True)
            peer = ["peer", public.stdout.strip(), "allowed-ips", f"{PEERS[name]}/32"]
            server.run(["wg", "set", ifname, *peer])
            self.wg_keys[name] = path
        if self.full:
            self._full_servers()

    def _full_servers(self) -> None:
        server, tmp = self.lab.server, self.dir
        proxy_conf = tmp / "tinyproxy.conf"
        proxy_conf.write_text(
            f"Port {HTTP_PORT}\nListen {SERVER_IP}\nTimeout 30\nMaxClients 32\nAllow 198.18.0.0/15\n"
            f"ConnectPort {CANARY_PORT}\nLogLevel Warning\nUser nobody\nGroup nogroup\n"
            f'PidFile "{tmp / "tinyproxy.pid"}"\n'
        )
        quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        server.popen(["tinyproxy", "-d", "-c", str(proxy_conf)], **quiet)
        ss = ["ss-server", "-s", SERVER_IP, "-p", str(SS_PORT), "-k", "lab key"]
        ss += ["-m", "chacha20-ietf-poly1305"]
        server.popen(ss, **quiet)
        key = tmp / "ss.key"
        key.write_text("lab key")
        key.chmod(0o600)
        (tmp / "pki").mkdir()
        pki = make_pki(tmp / "pki")
        # the three daemons share one client certificate: without --duplicate-cn each session would end
        # the one before it
        self.ovpn_server = start_openvpn_server(
            pki, tmp, "udp", ["--duplicate-cn"], netns=server.name, local=SERVER_IP, port=OVPN_PORT,
            multi=True,
        )  # fmt: skip
        ovpn = tmp / "user.ovpn"
        ovpn.write_text(
            f"client\ndev tun\n<ca>\n{pki.ca_crt.read_text()}</ca>\n<cert>\n{pki.client_crt.read_text()}"
            f"</cert>\n<key>\n{pki.client_key.read_text()}</key>\n"
        )
        ovpn.chmod(0o600)
        issued = self.ca.issue_cert(SERVER_IP)
        cert, tls_key = tmp / "oc-cert.pem", tmp / "oc-key.pem"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(tls_key))
        oc_conf = ocserv_config(tmp, SERVER_IP, OC_PORT, cert, tls_key)
        server.popen(["ocserv", "-f", "-c", str(oc_conf)], **quiet)
        password = tmp / "oc.pass"
        password.write_text("pw\n")
        password.chmod(0o600)
        for port in (HTTP_PORT, SS_PORT, OC_PORT):
            wait_tcp_listen(server, port)

    def _full_targets(self, stage: dict[str, Any], canary: dict[str, Any]) -> list[dict[str, Any]]:
        tmp = self.dir
        return [
            {"name": "http", "kind": "http_proxy", "host": SERVER_IP, "port": HTTP_PORT, "canary": canary,
             "data_stage": stage},
            {"name": "ss", "kind": "shadowsocks", "host": SERVER_IP, "port": SS_PORT, "canary": canary,
             "method": "chacha20-ietf-poly1305", "password_file": str(tmp / "ss.key"), "data_stage": stage},
            {"name": "ovpn", "kind": "openvpn_tunnel", "host": SERVER_IP, "port": OVPN_PORT,
             "config_file": str(tmp / "user.ovpn"), "canary": {"host": OVPN_GATEWAY, "port": CANARY_PORT},
             "data_stage": stage, "timeout": "15s"},
            {"name": "oc", "kind": "openconnect", "host": SERVER_IP, "port": OC_PORT,
             "ca_file": str(self.ca_file), "username": "probe", "password_file": str(tmp / "oc.pass"),
             "ping_address": OC_GATEWAY, "data_stage": stage},
        ]  # fmt: skip

    def config(self, name: str) -> dict[str, Any]:
        """The same targets for every daemon; its own WireGuard peer; a reference for ``kz`` only."""
        stage = {"volume": VOLUME, "min_lifetime": "1s", "stall_timeout": "1500ms"}
        canary = {"host": SERVER_IP, "port": CANARY_PORT}
        wireguard = {
            "name": "wg", "kind": "wireguard", "host": SERVER_IP, "port": 51820, "retransmit": "1s",
            "public_key": self.wg_public, "private_key_file": str(self.wg_keys[name]),
            "tunnel_address": PEERS[name], "ping_address": WG_SERVER_INSIDE, "data_stage": stage,
        }  # fmt: skip
        proxy = {"kind": "socks5", "host": SERVER_IP, "canary": canary, "data_stage": stage}
        doc: dict[str, Any] = {
            "vantage": {"name": name},
            "defaults": {"interval": "2s", "timeout": "6s", "jitter": 0.1},
            "scheduler": {"min_destination_spacing": "1ms", "controls_interval": "1s", "per_destination": 8},
            "confirmation": {"attempts": 2, "required": 2, "residual_window": "1s"},
            "controls": {
                "domestic": [{"name": "egov", "kind": "tcp", "host": ROUTER_INNER_IP, "port": DOMESTIC_PORT}],
                "international": [{"name": "wiki", "kind": "tcp", "host": SERVER_IP, "port": CANARY_PORT}],
            },
            "targets": [
                {**proxy, "name": "socks", "port": SOCKS_PORT},
                {**proxy, "name": "socks-dead", "port": DEAD_PORT},
                wireguard,
                *(self._full_targets(stage, canary) if self.full else []),
            ],
        }
        if self.full:  # twelve ways out (six kinds, two daemons) share the shaped link: more time each
            doc["defaults"] = {"interval": "4s", "timeout": "15s", "jitter": 0.1}
        if name == "kz":
            doc["reference_vantages"] = [
                {
                    "name": "abroad",
                    "url": f"https://{REF_IP}:{REF_PORT}",
                    "timeout": "2s",
                    "ca_file": str(self.ca_file),
                    "public_key": self.public_key,
                }
            ]
        return doc

    def _daemon(self, name: str, listen: str) -> None:
        doc = self.config(name)
        scheme = "http"
        if name == "reference":  # HTTPS (a certificate for its address) and a signing key
            self.public_key, doc["web"] = reference_web(self.dir, name, self.ca, REF_IP)
            scheme = "https"
        config = self.dir / f"{name}.yaml"
        config.write_text(json.dumps(doc))
        config.chmod(0o600)
        ns = self.lab.server if name == "reference" else self.lab.client
        argv = [
            sys.executable, "-m", "reachwatch", "run", "--config", str(config),
            "--state-dir", str(self.dir / f"{name}-state"), "--web.listen-address", listen,
            "--log.format", "json",
        ]  # fmt: skip
        with (self.dir / f"{name}.log").open("ab") as out:
            proc = ns.popen(argv, stdout=out, stderr=subprocess.STDOUT)
        url = f"{scheme}://{listen}/api/v1/status"
        wait_for(lambda: proc.poll() is not None or self._get(ns, url) is not None, 30, f"{name} API")
        assert proc.poll() is None, self.log_tail(name)

    def close(self) -> None:
        """Stop what is not a process of the lab's namespaces (those go with ``Lab.close``)."""
        if self.ovpn_server is not None:
            self.ovpn_server.stop()

    # -- the censor --------------------------------------------------------------------------------
    def set_phase(self, phase: str) -> None:
        if phase == self.phase:
            return
        self.lab.uncensor()
        self.lab.unthrottle()
        if phase == "cut":
            tcp = ", ".join(map(str, SERVER_PORTS["tcp"]))
            udp = ", ".join(map(str, SERVER_PORTS["udp"]))
            self.lab.censor(
                f"ip saddr {SERVER_IP} tcp sport {{ {tcp} }} ct reply bytes > {CUT_BYTES} drop\n"
                f"ip saddr {SERVER_IP} udp sport {{ {udp} }} ct reply bytes > {CUT_BYTES} drop"
            )
        elif phase == "aged":
            tcp = ", ".join(map(str, SERVER_PORTS["tcp"]))
            udp = ", ".join(map(str, SERVER_PORTS["udp"]))
            ports = f"{tcp}, {udp}"
            self.lab.kill_flows_after(
                2.0, f"ip daddr {SERVER_IP} meta l4proto {{ tcp, udp }} th dport {{ {ports} }}"
            )
        elif phase == "shaped":
            dev = self.lab.router_inner_if
            r = self.lab.router.run
            r(f"tc qdisc add dev {dev} root handle 1: htb default 20")
            r(f"tc class add dev {dev} parent 1: classid 1:10 htb rate 1mbit ceil 1mbit burst 16k")
            r(f"tc class add dev {dev} parent 1: classid 1:20 htb rate 10gbit")
            match = f"u32 match ip src {SERVER_IP}/32 flowid 1:10"
            r(f"tc filter add dev {dev} parent 1: protocol ip prio 1 {match}")
        elif phase != "open":
            raise ValueError(phase)
        self.phase = phase

    # -- reading the daemons -----------------------------------------------------------------------
    def _get(self, ns: Any, url: str) -> str | None:
        proc = ns.run([sys.executable, "-c", STATUS_CODE, url, str(self.ca_file)], check=False)
        return str(proc.stdout) if proc.returncode == 0 else None

    def status(self, name: str) -> dict[str, Any] | None:
        if name == "reference":
            body = self._get(self.lab.server, f"https://{REF_IP}:{REF_PORT}/api/v1/status")
        else:
            port = KZ_PORT if name == "kz" else ALONE_PORT
            body = self._get(self.lab.client, f"http://127.0.0.1:{port}/api/v1/status")
        return json.loads(body) if body is not None else None

    def metrics(self, name: str = "kz") -> str:
        port = KZ_PORT if name == "kz" else ALONE_PORT
        body = self._get(self.lab.client, f"http://127.0.0.1:{port}/metrics")
        assert body is not None, self.log_tail(name)
        return body

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def _all_measured(self, status: dict[str, Any] | None) -> bool:
        if status is None:
            return False
        return {t["name"] for t in status["targets"] if t.get("last")} >= set(self.names)

    def wait_for(
        self, name: str, expected: Mapping[str, tuple[str, str | None]], *, timeout: float = 45
    ) -> dict[str, Any]:
        """Poll a daemon's API until the vantage is online and every named verdict matches."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(name)
            assert status is not None, self.log_tail(name)
            seen = {t["name"]: (t["verdict"], t["technique"]) for t in status["targets"]}
            wrong = {n: seen.get(n) for n, want in expected.items() if seen.get(n) != want}
            if not wrong and status["vantage"]["state"] == "online":
                return status
            if time.monotonic() > deadline:
                lasts = {t["name"]: t["last"] for t in status["targets"] if t["name"] in wrong}
                raise AssertionError(
                    f"{name}, phase {self.phase}: vantage {status['vantage']}; differing {wrong}; "
                    f"last attempts {json.dumps(lasts)[:4000]}"
                )
            time.sleep(0.5)
