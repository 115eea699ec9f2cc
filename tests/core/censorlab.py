# ruff: noqa: RUF001 - Russian block pages: Cyrillic letters are meant
"""A censored country in three network namespaces, with two real reachwatch daemons.

Built on ``tests.netlab.Lab`` (client ns "in the country" <-> router ns "the censor" <-> server ns
"abroad"). ``CensorLab`` adds:

- abroad: real HTTP/TLS/DoH servers (``censorlab_servers.py``; certificates from a trustme CA the
  daemons trust through ``ca_file``), a truthful dnsmasq resolver, and a **reference vantage**: a second
  ``reachwatch run`` probing the same target names, listening on 198.18.1.9;
- on the router (domestic): the domestic control, the throughput control download, the ISP's dnsmasq
  (the client's system resolver, through a per-netns ``/etc/netns/<ns>/resolv.conf``), an interception
  TLS box presenting certificates from a rogue CA named like Kazakhstan's national root, and a
  transparent relay that goes silent after a ClientHello naming a forbidden site;
- in the country: ``reachwatch run`` with controls and the reference, read through its API from inside
  the client namespace.

``set_phase`` switches the censor between ``open`` (nothing), ``censored`` (DNS poisoning, TLS
interception and SNI drop via nftables ``redirect``, a silent drop, throttling with tc) and
``offline`` (the same censor, and every control cut: nothing may be called blocked).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trustme

from reachwatch.refproto import generate_key
from tests.netlab import ROUTER_INNER_IP, Lab
from tests.servers import rogue_ca

SERVERS = Path(__file__).with_name("censorlab_servers.py")
WEB_PORT = 10491  # fixed: every namespace is the lab's own, nothing else listens there
HTTP_PORT, DOMESTIC_PORT, MITM_PORT, RELAY_PORT = 8080, 8081, 8443, 8444

INTL_IP = "198.18.1.2"  # international control
DROP_IP = "198.18.1.5"  # silently dropped by the censor
DEAD_IP = "198.18.1.7"  # nothing listens: a dead server
REF_IP = "198.18.1.9"  # the reference vantage's API
MITM_IP = "198.18.1.10"  # TLS server whose port 443 the censor intercepts
SNI_IP = "198.18.1.11"  # TLS server behind the SNI filter (target has neutral_sni)
BULK_IP = "198.18.1.12"  # throughput download, throttled
DOH_IP = "198.18.1.13"  # truthful resolver abroad: dnsmasq on :53, DoH on :443
SNI_REF_IP = "198.18.1.14"  # TLS server behind the SNI filter (no neutral_sni: the reference decides)
TRUE_IP = "198.18.1.20"  # what the poisoned name really resolves to
POISON_IP = "10.10.34.35"  # what the ISP resolver says instead (a bogon)
# web pages abroad the censor replaces with its block pages (nftables redirect to the router's responders)
PAGE_FP_IP, PAGE_PATTERN_IP, PAGE_REF_IP = "198.18.1.21", "198.18.1.22", "198.18.1.23"
ANY_MITM_IP = "198.18.1.24"  # TLS server whose port 443 a box signing with an ordinary-named root intercepts
ANY_MITM_PORT = 8445
CUT_IP = "198.18.1.26"  # downloads the censor freezes after CUT_BYTES: https and throughput targets
CUT_BYTES, CUT_NAME = 32 * 1024, "bulk.test"
FORGER_PORT = 8446  # the path attacker's stand-in for the reference vantage, on the router
CONTROL_MITM_IP = "198.18.1.25"  # an international control the KZ-root box intercepts (not when offline)
ANY_ROOT = ("XX", "Example ISP", "Corporate Security Gateway CA")  # on no list of national roots
BLOCKPAGE_UTF8_PORT, BLOCKPAGE_CP1251_PORT = 8082, 8083
# the Roskomnadzor-style page (built-in fingerprint ru-149fz), UTF-8
RKN_PAGE = (
    '<html><head><meta charset="utf-8"><title>Доступ ограничен</title></head><body>'
    "<p>Доступ к информационному ресурсу ограничен на основании Федерального закона от 27.07.2006 "
    "№ 149-ФЗ «Об информации, информационных технологиях и о защите информации».</p></body></html>"
)
# an ISP's own page no built-in fingerprint knows, Windows-1251 (declared in the header only)
ISP_PAGE = (
    "<html><head><title>Сайт недоступен</title></head><body><h1>Сайт заблокирован</h1>"
    "<p>Уважаемый абонент! Запрошенный сайт заблокирован вашим провайдером. Справки: 8-800-000-00-00."
    "</p></body></html>"
)

BANK, FORBIDDEN, NEUTRAL, POISONED, DOH_NAME = (
    "bank.test",
    "forbidden.test",
    "neutral.test",
    "blocked.test",
    "doh.test",
)
KZ_ROOT = ("KZ", "ISCA", "Information Security Certification Authority")
BLOB = 2 * 1024 * 1024

STATUS_CODE = """
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2]) if len(sys.argv) > 2 else None
with urllib.request.urlopen(sys.argv[1], timeout=5, context=ctx) as r:
    sys.stdout.write(r.read().decode())
"""

TARGET_NAMES = (
    "dns-poisoned",
    "tls-intercepted",
    "https-intercepted",
    "tls-sni",
    "tls-sni-ref",
    "throughput",
    "dropped",
    "dead",
    "page-fingerprint",
    "page-pattern",
    "page-vs-reference",
    "tls-intercepted-any",
    "tls-poisoned",
    "https-poisoned",
    "tcp-poisoned",
    "https-cut",
    "throughput-cut",
)


def reference_web(directory: Path, name: str, ca: trustme.CA, host: str) -> tuple[str, dict[str, str]]:
    """What makes a lab daemon a reference vantage: a signing key and HTTPS with a certificate for
    ``host`` from ``ca``, as files in ``directory``. Returns the public key the in-country daemons pin
    and the ``web`` section of the reference's config."""
    pem, public_key = generate_key()
    key_file, web_config = directory / f"{name}-signing.key", directory / f"{name}-web.yml"
    key_file.write_bytes(pem)
    key_file.chmod(0o600)
    cert, tls_key = directory / f"{name}-tls.pem", directory / f"{name}-tls.key"
    issued = ca.issue_cert(host)
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(tls_key))
    tls_key.chmod(0o600)
    tls = {"cert_file": str(cert), "key_file": str(tls_key)}
    web_config.write_text(json.dumps({"tls_server_config": tls}))
    return public_key, {"reference_key_file": str(key_file), "config_file": str(web_config)}


def lab_config(
    ca_file: Path, *, vantage: str, reference: bool, public_key: str | None = None
) -> dict[str, Any]:
    """The same targets and controls for both vantages; only the in-country one has a reference (over
    HTTPS, its answers signed by the key pinned as ``public_key``)."""
    tls = {"kind": "tls", "port": 443, "ca_file": str(ca_file)}
    doc: dict[str, Any] = {
        "vantage": {"name": vantage},
        "defaults": {"interval": "1s", "timeout": "2s", "jitter": 0.1},
        "scheduler": {"min_destination_spacing": "1ms", "controls_interval": "1s", "per_destination": 8},
        "confirmation": {"attempts": 2, "required": 2, "residual_window": "1s"},
        "controls": {
            "domestic": [
                {"name": "egov", "kind": "http", "url": f"http://{ROUTER_INNER_IP}:{DOMESTIC_PORT}/"}
            ],
            "international": [
                {"name": "wiki", "kind": "http", "url": f"http://{INTL_IP}:{HTTP_PORT}/"},
                # a control behind the KZ-root interception box once the censor is at work
                {**tls, "name": "bank-control", "host": CONTROL_MITM_IP, "server_name": BANK},
            ],
        },
        "targets": [
            {
                "name": "dns-poisoned",
                "kind": "dns",
                "query": POISONED,
                "resolvers": [
                    {
                        "name": "doh_abroad",
                        "doh": f"https://{DOH_NAME}/dns-query",
                        "address": DOH_IP,
                        "tls": {"ca_file": str(ca_file)},
                    }
                ],
            },
            {**tls, "name": "tls-intercepted", "host": MITM_IP, "server_name": BANK},
            {**tls, "name": "tls-intercepted-any", "host": ANY_MITM_IP, "server_name": BANK},
            # hostname targets behind the poisoned ISP resolver (abroad the name resolves to TRUE_IP)
            {**tls, "name": "tls-poisoned", "host": POISONED},
            {
                "name": "https-poisoned",
                "kind": "https",
                "url": f"https://{POISONED}/",
                "ca_file": str(ca_file),
            },
            {"name": "tcp-poisoned", "kind": "tcp", "host": POISONED, "port": 443},
            # downloads the censor kills with a reset after CUT_BYTES (the flow carried data first)
            {
                "name": "https-cut",
                "kind": "https",
                "url": f"https://{CUT_NAME}/blob",
                "address": CUT_IP,
                "ca_file": str(ca_file),
                "max_bytes": 256 * 1024,
            },
            {
                "name": "throughput-cut",
                "kind": "throughput",
                "url": f"http://{CUT_IP}:{HTTP_PORT}/blob",
                "control_url": f"http://{ROUTER_INNER_IP}:{DOMESTIC_PORT}/blob",
                "size": 512 * 1024,
                "transfer_timeout": "1500ms",
                "timeout": "5s",
            },
            {
                "name": "https-intercepted",
                "kind": "https",
                "url": f"https://{BANK}/",
                "address": MITM_IP,
                "ca_file": str(ca_file),
            },
            {
                **tls,
                "name": "tls-sni",
                "host": SNI_IP,
                "server_name": FORBIDDEN,
                "neutral_sni": NEUTRAL,
                "timeout": "3s",
            },
            {**tls, "name": "tls-sni-ref", "host": SNI_REF_IP, "server_name": FORBIDDEN},
            {
                "name": "throughput",
                "kind": "throughput",
                "url": f"http://{BULK_IP}:{HTTP_PORT}/blob",
                "control_url": f"http://{ROUTER_INNER_IP}:{DOMESTIC_PORT}/blob",
                "size": BLOB,
                "max_ratio": 0.1,
                "transfer_timeout": "1s",
                "timeout": "5s",
                "interval": "2s",
            },
            {"name": "dropped", "kind": "tcp", "host": DROP_IP, "port": HTTP_PORT},
            {"name": "page-fingerprint", "kind": "http", "url": f"http://{PAGE_FP_IP}:{HTTP_PORT}/"},
            {
                "name": "page-pattern",
                "kind": "http",
                "url": f"http://{PAGE_PATTERN_IP}:{HTTP_PORT}/",
                "blockpage_patterns": ["ЗАБЛОКИРОВАН"],  # the page says it in lower case, in cp1251
            },
            {"name": "page-vs-reference", "kind": "http", "url": f"http://{PAGE_REF_IP}:{HTTP_PORT}/"},
            {"name": "dead", "kind": "tcp", "host": DEAD_IP, "port": HTTP_PORT},
        ],
    }
    if reference:
        doc["reference_vantages"] = [
            {
                "name": "abroad",
                "url": f"https://{REF_IP}:{WEB_PORT}",
                "timeout": "2s",
                "refresh": "3s",  # the phases change the paths: the default 30 s would make each wait longer
                "ca_file": str(ca_file),
                **({"public_key": public_key} if public_key else {}),
            }
        ]
    return doc


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``cond`` every 0.1 s until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class CensorLab:
    """The lab, its servers and both daemons; ``start()`` once, ``set_phase()`` between assertions."""

    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.lab = lab
        self.dir = workdir
        self.phase = ""
        self.ca = trustme.CA()
        self.ca_file = workdir / "ca.pem"
        self._netns_dirs: list[Path] = []
        self._isp_dns: subprocess.Popen[bytes] | None = None
        self.public_key: str | None = None  # the reference's signing key, pinned by the in-country daemon

    # -- building ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        pages = (PAGE_FP_IP, PAGE_PATTERN_IP, PAGE_REF_IP, ANY_MITM_IP, CONTROL_MITM_IP, TRUE_IP, CUT_IP)
        for ip in (DROP_IP, DEAD_IP, REF_IP, MITM_IP, SNI_IP, BULK_IP, DOH_IP, SNI_REF_IP, *pages):
            self.lab.server_ip(int(ip.rsplit(".", 1)[1]))
        # system resolvers: must exist before the daemons start (ip netns exec bind-mounts them)
        self._resolv_conf(self.lab.client.name, ROUTER_INNER_IP)
        self._resolv_conf(self.lab.server.name, DOH_IP)
        self._dnsmasq(self.lab.server, DOH_IP, [f"--address=/{POISONED}/{TRUE_IP}"])
        self._start_servers()
        self.set_phase("open")
        self._daemon(self.lab.server, "reference", f"{REF_IP}:{WEB_PORT}", reference=False)
        # the reference must have seen every target before the in-country daemon asks it
        wait_for(lambda: self._all_measured(self.reference_status()), 30, "the reference's first results")
        self._daemon(self.lab.client, "kz", f"127.0.0.1:{WEB_PORT}", reference=True)

    def close(self) -> None:
        """Remove what the lab put outside its namespaces (the namespaces go with ``Lab.close``)."""
        for path in self._netns_dirs:
            shutil.rmtree(path, ignore_errors=True)

    def _resolv_conf(self, ns: str, nameserver: str) -> None:
        path = Path("/etc/netns") / ns
        path.mkdir(parents=True, exist_ok=True)
        self._netns_dirs.append(path)
        (path / "resolv.conf").write_text(f"nameserver {nameserver}\noptions timeout:1 attempts:1\n")

    def _dnsmasq(self, ns: Any, ip: str, extra: list[str]) -> subprocess.Popen[bytes]:
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        args = [
            binary,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            f"--listen-address={ip}",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-negcache",
            "--cache-size=0",
            "--pid-file",
            "--user=root",
            *extra,
        ]
        with (self.dir / f"dnsmasq-{ip}.log").open("ab") as log:  # the child keeps its own copy
            proc: subprocess.Popen[bytes] = ns.popen(args, stdout=subprocess.DEVNULL, stderr=log)
        self._wait_dns(ns, ip)
        return proc

    def _wait_dns(self, ns: Any, ip: str) -> None:
        code = (
            "import sys, dns.message, dns.query\n"
            "q = dns.message.make_query(sys.argv[2], 'A')\n"
            "dns.query.udp(q, sys.argv[1], timeout=0.5)\n"
        )

        def answers() -> bool:
            argv = [sys.executable, "-c", code, ip, POISONED]
            return bool(ns.run(argv, check=False).returncode == 0)

        wait_for(answers, 15, f"dnsmasq on {ip}")

    def _isp_resolver(self, *, poisoned: bool) -> None:
        """The ISP's resolver on the router: forwards abroad; when poisoned, lies about one name."""
        if self._isp_dns is not None:
            self._isp_dns.terminate()
            self._isp_dns.wait(timeout=5)
        extra = [f"--server={DOH_IP}"]
        if poisoned:
            extra.append(f"--address=/{POISONED}/{POISON_IP}")
        self._isp_dns = self._dnsmasq(self.lab.router, ROUTER_INNER_IP, extra)

    def _start_servers(self) -> None:
        def pem(ca: trustme.CA, name: str, *hosts: str) -> str:
            path = self.dir / f"{name}.pem"
            ca.issue_cert(*hosts).private_key_and_cert_chain_pem.write_to_path(str(path))
            return str(path)

        kz, any_root = rogue_ca(*KZ_ROOT), rogue_ca(*ANY_ROOT)
        abroad = [
            {"type": "http", "host": ip, "port": HTTP_PORT, "blob": BLOB}
            for ip in (INTL_IP, DROP_IP, BULK_IP, PAGE_FP_IP, PAGE_PATTERN_IP, PAGE_REF_IP, CUT_IP)
        ]
        abroad.append(
            {
                "type": "http",
                "host": CUT_IP,
                "port": 443,
                "cert": pem(self.ca, "bulk", CUT_NAME),
                "blob": BLOB,
            }
        )
        abroad += [
            {"type": "http", "host": MITM_IP, "port": 443, "cert": pem(self.ca, "bank", BANK)},
            {"type": "tls", "host": ANY_MITM_IP, "port": 443, "cert": pem(self.ca, "bank-any", BANK)},
            {"type": "http", "host": TRUE_IP, "port": 443, "cert": pem(self.ca, "poisoned", POISONED)},
            {"type": "tls", "host": CONTROL_MITM_IP, "port": 443, "cert": pem(self.ca, "bank-ctl", BANK)},
            *(
                {"type": "tls", "host": ip, "port": 443, "cert": pem(self.ca, "forbidden", FORBIDDEN)}
                for ip in (SNI_IP, SNI_REF_IP)
            ),
            {
                "type": "doh",
                "host": DOH_IP,
                "port": 443,
                "cert": pem(self.ca, "doh", DOH_NAME),
                "upstream": f"{DOH_IP}:53",
            },
        ]
        domestic = [
            {"type": "http", "host": ROUTER_INNER_IP, "port": DOMESTIC_PORT, "blob": BLOB},
            # the interception box: the bank's name, signed by the rogue national root
            {"type": "tls", "host": ROUTER_INNER_IP, "port": MITM_PORT, "cert": pem(kz, "mitm", BANK)},
            # another box, signing with a root of an ordinary name (a corporate or ISP gateway)
            {
                "type": "tls",
                "host": ROUTER_INNER_IP,
                "port": ANY_MITM_PORT,
                "cert": pem(any_root, "mitm-any", BANK),
            },
            {"type": "sni_relay", "host": ROUTER_INNER_IP, "port": RELAY_PORT, "forbidden": FORBIDDEN},
            # a certificate for the reference's address from the CA the vantage trusts for it
            {
                "type": "forger",
                "host": ROUTER_INNER_IP,
                "port": FORGER_PORT,
                "cert": pem(self.ca, "forger", REF_IP),
                "targets": [*TARGET_NAMES, "wiki", "bank-control"],
            },
            *(
                {
                    "type": "page",
                    "host": ROUTER_INNER_IP,
                    "port": port,
                    "file": str(path),
                    "content_type": ctype,
                }
                for port, path, ctype in self._block_pages()
            ),
        ]
        for ns, name, spec in ((self.lab.server, "abroad", abroad), (self.lab.router, "router", domestic)):
            spec_file, ready = self.dir / f"{name}.json", self.dir / f"{name}.ready"
            spec_file.write_text(json.dumps(spec))
            with (self.dir / f"{name}-servers.log").open("ab") as log:
                proc = ns.popen(
                    [sys.executable, str(SERVERS), str(spec_file), str(ready)], stdout=log, stderr=log
                )
            wait_for(lambda r=ready, p=proc: r.exists() or p.poll() is not None, 20, f"{name} servers")
            assert proc.poll() is None, (self.dir / f"{name}-servers.log").read_text()[-2000:]

    def _block_pages(self) -> list[tuple[int, Path, str]]:
        utf8, cp1251 = self.dir / "blockpage-rkn.html", self.dir / "blockpage-isp.html"
        utf8.write_bytes(RKN_PAGE.encode("utf-8"))
        cp1251.write_bytes(ISP_PAGE.encode("cp1251"))
        return [
            (BLOCKPAGE_UTF8_PORT, utf8, "text/html"),  # charset from <meta>
            (BLOCKPAGE_CP1251_PORT, cp1251, "text/html; charset=windows-1251"),
        ]

    def _daemon(self, ns: Any, name: str, listen: str, *, reference: bool) -> None:
        config = self.dir / f"{name}.yaml"
        doc = lab_config(self.ca_file, vantage=name, reference=reference, public_key=self.public_key)
        scheme = "http"
        if not reference:  # the reference: HTTPS (a certificate for its address) and a signing key
            self.public_key, doc["web"] = reference_web(self.dir, name, self.ca, listen.rsplit(":", 1)[0])
            scheme = "https"
        config.write_text(json.dumps(doc))
        config.chmod(0o600)
        log = self.dir / f"{name}.log"
        argv = [
            sys.executable,
            "-m",
            "reachwatch",
            "run",
            "--config",
            str(config),
            "--state-dir",
            str(self.dir / f"{name}-state"),
            "--web.listen-address",
            listen,
            "--log.format",
            "json",
        ]
        with log.open("ab") as out:
            proc = ns.popen(argv, stdout=out, stderr=subprocess.STDOUT)
        url = f"{scheme}://{listen}/api/v1/status"
        wait_for(lambda: proc.poll() is not None or self._get(ns, url) is not None, 30, f"{name} API")
        assert proc.poll() is None, log.read_text()[-3000:]

    # -- the censor --------------------------------------------------------------------------------
    def set_phase(self, phase: str) -> None:
        """``open``, ``censored``, ``offline`` (the censor stays, every control is cut) or
        ``intercepted_control`` (censored, and the only international control left answering is the one
        behind the interception box) or ``forged_reference`` (censored, and the reference's answers come
        from a path attacker)."""
        if phase == self.phase:
            return
        if phase not in ("open", "censored", "offline", "intercepted_control", "forged_reference"):
            raise ValueError(phase)
        censoring = phase != "open"
        self._isp_resolver(poisoned=censoring)
        if not censoring:
            self.lab.uncensor()
            self.lab.router.run("nft delete table ip rwlab", check=False)
            self.lab.unthrottle()
        else:
            # a cut after some kilobytes (TSPU-style freeze): past CUT_BYTES from the server, nothing more
            # of that flow crosses the border
            forward = f"ip daddr {DROP_IP} drop\nip saddr {CUT_IP} ct reply bytes > {CUT_BYTES} drop"
            input_rules = ""
            if phase in ("offline", "intercepted_control"):
                forward += f"\nip daddr {INTL_IP} drop"
            if phase == "offline":
                # everything in the country goes quiet, the censor's own boxes and responders too
                # the control behind the interception box is cut like every other (the box stays)
                forward += f"\nip daddr {CONTROL_MITM_IP} drop"
                ports = f"{DOMESTIC_PORT}, {BLOCKPAGE_UTF8_PORT}, {BLOCKPAGE_CP1251_PORT}"
                input_rules = f"tcp dport {{ {ports} }} drop"
            if phase == "forged_reference":
                # the redirect takes new connections only: the daemon's kept-alive one to the real
                # reference is reset, as the path attacker would, so the next fetch meets the forger
                forward += f"\nip daddr {REF_IP} tcp dport {WEB_PORT} reject with tcp reset"
            self.lab.censor(forward)
            self._redirects(input_rules, control_box=phase != "offline", forger=phase == "forged_reference")
            self._throttle_from(BULK_IP)
        self.phase = phase

    def _redirects(self, input_rules: str, *, control_box: bool, forger: bool = False) -> None:
        """Transparent interception on the router: the client's SYN to port 443 is answered locally."""
        control_rule = f"    ip daddr {CONTROL_MITM_IP} tcp dport 443 redirect to :{MITM_PORT}\n"
        control_rule = control_rule if control_box else ""
        if forger:
            control_rule += f"    ip daddr {REF_IP} tcp dport {WEB_PORT} redirect to :{FORGER_PORT}\n"
        ruleset = (
            "table ip rwlab\n"
            "delete table ip rwlab\n"
            "table ip rwlab {\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            f"    ip daddr {MITM_IP} tcp dport 443 redirect to :{MITM_PORT}\n"
            f"    ip daddr {{ {SNI_IP}, {SNI_REF_IP} }} tcp dport 443 redirect to :{RELAY_PORT}\n"
            f"    ip daddr {ANY_MITM_IP} tcp dport 443 redirect to :{ANY_MITM_PORT}\n"
            f"{control_rule}"
            f"    ip daddr {PAGE_FP_IP} tcp dport {HTTP_PORT} redirect to :{BLOCKPAGE_UTF8_PORT}\n"
            f"    ip daddr {{ {PAGE_PATTERN_IP}, {PAGE_REF_IP} }} tcp dport {HTTP_PORT}"
            f" redirect to :{BLOCKPAGE_CP1251_PORT}\n"
            "  }\n"
            "  chain input {\n"
            "    type filter hook input priority 0; policy accept;\n"
            f"    {input_rules}\n"
            "  }\n"
            "}\n"
        )
        self.lab.router.run(["nft", "-f", "-"], input=ruleset)

    def _throttle_from(self, source: str) -> None:
        """Shape downloads from ``source`` only (an htb class picked by a u32 filter; everything else
        takes the unshaped default class), so the domestic control download on the same link keeps
        full speed. htb + u32 rather than prio: the kernels we run on do not all have sch_prio."""
        dev = self.lab.router_inner_if
        self.lab.unthrottle()
        r = self.lab.router.run
        r(f"tc qdisc add dev {dev} root handle 1: htb default 20")
        r(f"tc class add dev {dev} parent 1: classid 1:10 htb rate 200kbit ceil 200kbit burst 8k")
        r(f"tc class add dev {dev} parent 1: classid 1:20 htb rate 10gbit")
        r(f"tc filter add dev {dev} parent 1: protocol ip prio 1 u32 match ip src {source}/32 flowid 1:10")

    # -- reading the daemons -----------------------------------------------------------------------
    def _get(self, ns: Any, url: str) -> str | None:
        proc = ns.run([sys.executable, "-c", STATUS_CODE, url, str(self.ca_file)], check=False)
        return str(proc.stdout) if proc.returncode == 0 else None

    def status(self) -> dict[str, Any]:
        """The in-country daemon's /api/v1/status, read from inside the country."""
        body = self._get(self.lab.client, f"http://127.0.0.1:{WEB_PORT}/api/v1/status")
        assert body is not None, self.log_tail("kz")
        result: dict[str, Any] = json.loads(body)
        return result

    def metrics(self) -> str:
        body = self._get(self.lab.client, f"http://127.0.0.1:{WEB_PORT}/metrics")
        assert body is not None, self.log_tail("kz")
        return body

    def reference_status(self) -> dict[str, Any] | None:
        body = self._get(self.lab.server, f"https://{REF_IP}:{WEB_PORT}/api/v1/status")
        return json.loads(body) if body is not None else None

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    @staticmethod
    def _all_measured(status: dict[str, Any] | None) -> bool:
        if status is None:
            return False
        seen = {t["name"] for t in status["targets"] if t.get("last")}
        return seen >= set(TARGET_NAMES)

    def wait_for(
        self, expected: Mapping[str, tuple[str, str | None]], *, vantage: str = "online", timeout: float = 45
    ) -> dict[str, Any]:
        """Poll the in-country API until the vantage state and every named verdict match; the last
        status is returned, or the assertion shows what differed and each target's last attempt."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            seen = {t["name"]: (t["verdict"], t["technique"]) for t in status["targets"]}
            wrong = {n: seen.get(n) for n, want in expected.items() if seen.get(n) != want}
            if not wrong and status["vantage"]["state"] == vantage:
                return status
            if time.monotonic() > deadline:
                lasts = {t["name"]: t["last"] for t in status["targets"] if t["name"] in wrong}
                raise AssertionError(
                    f"phase {self.phase}: vantage {status['vantage']}, want {vantage}; "
                    f"differing {wrong}; last attempts {json.dumps(lasts)[:4000]}"
                )
            time.sleep(0.5)


def target(status: dict[str, Any], name: str) -> dict[str, Any]:
    """One target's entry in a status document."""
    found: dict[str, Any] = next(t for t in status["targets"] if t["name"] == name)
    return found
