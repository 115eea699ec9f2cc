"""End to end: a real censor on a router namespace, the real daemon inside the country, a real reference
vantage abroad, and the verdict + technique the in-country daemon publishes for each technique.

One lab per module (``tests/core/censorlab.py``): both daemons start once; each test switches the censor
to the phase it needs (``open``, ``censored``, ``offline``) and polls the in-country API. Proves: with no
censor every live target is reachable; the ISP resolver's bogon vs DoH abroad is ``dns_tampering``; a
transparent interception box with a KZ-root certificate is ``tls_interception`` (tls and https targets)
with the root named in the API and /metrics; silence after a ClientHello naming the site is
``tls_interference`` (from the neutral-SNI diagnostic, or from the reference vantage); a shaped link is
``throttled``; a silent drop is ``tcp_blackhole`` because the real reference reached the target, while a
dead server (the reference fails too) stays ``unreachable``; with every control cut the same censor
yields ``unknown``, never ``blocked``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.core.censorlab import (
    ANY_ROOT,
    CUT_BYTES,
    KZ_ROOT,
    POISON_IP,
    TARGET_NAMES,
    TRUE_IP,
    CensorLab,
    target,
)
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

CONTROLS = {"egov": ("reachable", None), "wiki": ("reachable", None)}


@pytest.fixture(scope="module")
def censorlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CensorLab]:
    with Lab("e2e") as lab:
        cl = CensorLab(lab, tmp_path_factory.mktemp("censorlab"))
        try:
            cl.start()
            yield cl
        finally:
            lab.close()  # stop the daemons before their resolv.conf goes
            cl.close()


def test_without_a_censor_live_targets_are_reachable_and_a_dead_server_unreachable(
    censorlab: CensorLab,
) -> None:
    censorlab.set_phase("open")
    expected = {name: ("reachable", None) for name in TARGET_NAMES}
    expected["dead"] = ("unreachable", None)
    status = censorlab.wait_for({**CONTROLS, **expected})
    assert target(status, "dns-poisoned")["last"]["facts"]["answers_system"] == [TRUE_IP]


def test_isp_resolver_answering_a_bogon_while_doh_abroad_tells_the_truth_is_dns_tampering(
    censorlab: CensorLab,
) -> None:
    censorlab.set_phase("censored")
    status = censorlab.wait_for({**CONTROLS, "dns-poisoned": ("blocked", "dns_tampering")})
    facts = target(status, "dns-poisoned")["last"]["facts"]
    assert facts["answers_system"] == [POISON_IP]
    assert facts["answers_doh_abroad"] == [TRUE_IP]


def test_transparent_interception_with_a_kz_root_is_tls_interception_and_names_the_root(
    censorlab: CensorLab,
) -> None:
    censorlab.set_phase("censored")
    intercepted = ("blocked", "tls_interception")
    status = censorlab.wait_for(
        {**CONTROLS, "tls-intercepted": intercepted, "https-intercepted": intercepted}
    )
    country, org, cn = KZ_ROOT
    for name in ("tls-intercepted", "https-intercepted"):
        last = target(status, name)["last"]
        assert (last["failure"], last["stage"]) == ("ssl_unknown_authority", "tls_handshake"), name
        assert last["facts"]["tls_issuer"] == f"CN={cn},O={org},C={country}", name
    issuer_lines = [
        line
        for line in censorlab.metrics().splitlines()
        if line.startswith("reachwatch_tls_presented_issuer_info{") and 'target="tls-intercepted"' in line
    ]
    assert len(issuer_lines) == 1, issuer_lines
    assert f'issuer="CN={cn},O={org},C={country}"' in issuer_lines[0]
    assert issuer_lines[0].endswith(" 1.0")


def test_silence_after_a_client_hello_naming_the_site_is_tls_interference(censorlab: CensorLab) -> None:
    censorlab.set_phase("censored")
    status = censorlab.wait_for(
        {
            **CONTROLS,
            "tls-sni": ("blocked", "tls_interference"),  # local evidence: the neutral SNI got through
            "tls-sni-ref": ("blocked", "tls_interference"),  # no neutral SNI: the reference reached it
        }
    )
    sni = target(status, "tls-sni")["last"]
    assert (sni["stage"], sni["evidence"]) == ("tls_handshake", "tls_interference")
    assert sni["facts"]["neutral_sni_handshake"] is True
    ref = target(status, "tls-sni-ref")["last"]
    assert (ref["stage"], ref["evidence"]) == ("tls_handshake", None)
    reference = censorlab.reference_status()
    assert reference is not None
    assert target(reference, "tls-sni-ref")["last"]["success"] is True


def test_a_shaped_link_abroad_with_a_fast_domestic_control_is_throttled(censorlab: CensorLab) -> None:
    censorlab.set_phase("censored")
    status = censorlab.wait_for({**CONTROLS, "throughput": ("blocked", "throttled")})
    facts = target(status, "throughput")["last"]["facts"]
    assert facts["throughput_ratio"] < 0.1
    # the tbf caps it at 200 kbit/s (25 kB/s); over a short transfer its burst lifts the average, and a loaded
    # machine makes that worse, so the bound only separates "shaped" from loopback's megabytes per second
    assert facts["throughput_bps"] < 250_000


def test_silent_drop_is_tcp_blackhole_by_the_real_reference_and_a_dead_server_stays_unreachable(
    censorlab: CensorLab,
) -> None:
    censorlab.set_phase("censored")
    status = censorlab.wait_for(
        {**CONTROLS, "dropped": ("blocked", "tcp_blackhole"), "dead": ("unreachable", None)}
    )
    dropped = target(status, "dropped")["last"]
    assert (dropped["failure"], dropped["stage"], dropped["evidence"]) == (
        "generic_timeout_error",
        "connect",
        None,
    )
    assert target(status, "dead")["last"]["failure"] == "connection_refused"
    # what the in-country daemon relied on: the reference abroad reached one and not the other
    reference = censorlab.reference_status()
    assert reference is not None
    assert target(reference, "dropped")["last"]["success"] is True
    assert target(reference, "dead")["last"]["success"] is False


def test_with_every_control_cut_the_same_censor_is_unknown_never_blocked(censorlab: CensorLab) -> None:
    censorlab.set_phase("offline")
    expected = {name: ("unknown", None) for name in (*TARGET_NAMES, "egov", "wiki")}
    status = censorlab.wait_for(expected, vantage="offline")
    # the censor is still at work: the probes keep seeing its evidence, the verdict ignores it
    assert target(status, "tls-intercepted")["last"]["evidence"] == "tls_interception"
    blocked = [
        line
        for line in censorlab.metrics().splitlines()
        if line.startswith("reachwatch_target_blocked{") and not line.endswith(" 0.0")
    ]
    assert blocked == []


def test_russian_block_pages_from_the_censors_responder_are_http_blockpage(censorlab: CensorLab) -> None:
    """The censor answers three sites with its own pages: the Roskomnadzor-style page in UTF-8 (charset in
    ``<meta>``; the built-in fingerprint, no operator pattern), and an ISP page in Windows-1251 (charset
    in the header) that no fingerprint knows: recognised by an upper-case operator pattern, and without
    one by its block-page words plus a page unlike the one the reference fetched."""
    censorlab.set_phase("censored")
    blockpage = ("blocked", "http_blockpage")
    status = censorlab.wait_for(
        {**CONTROLS, "page-fingerprint": blockpage, "page-pattern": blockpage, "page-vs-reference": blockpage}
    )
    fp = target(status, "page-fingerprint")["last"]["facts"]
    assert (fp["blockpage"], fp["charset"], fp["title"]) == ("ru-149fz", "utf-8", "Доступ ограничен")
    pattern = target(status, "page-pattern")["last"]["facts"]
    assert (pattern["blockpage"], pattern["charset"]) == ("operator_pattern", "cp1251")
    compared = target(status, "page-vs-reference")
    assert compared["last"]["success"] is True  # a 200 page: only the comparison makes it blocked
    assert compared["last"]["facts"]["blockpage_markers"] is True
    assert compared["last"]["facts"]["title"] == "Сайт недоступен"


def test_interception_by_a_root_with_an_ordinary_name_is_tls_interception_by_the_reference(
    censorlab: CensorLab,
) -> None:
    """No list names this root: the reference validated another leaf for the same name, so the refused
    chain is a substitute; the presented issuer is named in the API and in /metrics (the alert's join)."""
    censorlab.set_phase("censored")
    status = censorlab.wait_for({**CONTROLS, "tls-intercepted-any": ("blocked", "tls_interception")})
    last = target(status, "tls-intercepted-any")["last"]
    country, org, cn = ANY_ROOT
    assert (last["failure"], last["evidence"]) == ("ssl_unknown_authority", None)  # not local evidence
    assert last["facts"]["tls_issuer"] == f"CN={cn},O={org},C={country}"
    issuers = [
        line
        for line in censorlab.metrics().splitlines()
        if line.startswith("reachwatch_tls_presented_issuer_info{") and 'target="tls-intercepted-any"' in line
    ]
    assert len(issuers) == 1 and f'issuer="CN={cn},O={org},C={country}"' in issuers[0], issuers


def test_an_intercepted_control_keeps_the_vantage_online_and_is_itself_interception(
    censorlab: CensorLab,
) -> None:
    """Every plain international control is cut; the one left completes TLS with the KZ-root substitute:
    the vantage is online (something abroad-facing answered), the control is blocked/tls_interception,
    and the censor's techniques keep their verdicts instead of turning unknown: the cut control itself is
    a blackhole the reference sees through."""
    censorlab.set_phase("intercepted_control")
    status = censorlab.wait_for(
        {
            "bank-control": ("blocked", "tls_interception"),
            "wiki": ("blocked", "tcp_blackhole"),
            "dropped": ("blocked", "tcp_blackhole"),
            "dead": ("unreachable", None),
        },
        vantage="online",
    )
    assert target(status, "bank-control")["role"] == "international_control"


def test_a_poisoned_resolver_in_front_of_tls_https_and_tcp_targets_is_dns_tampering(
    censorlab: CensorLab,
) -> None:
    """No dns target needed: the ISP resolver's bogon answer for the hostname, against the address the
    reference reached, is named as the cause of the failed tls, https and tcp attempts."""
    censorlab.set_phase("censored")
    tampering = ("blocked", "dns_tampering")
    censorlab.wait_for(
        {**CONTROLS, "tls-poisoned": tampering, "https-poisoned": tampering, "tcp-poisoned": tampering}
    )
    names = ("tls-poisoned", "https-poisoned", "tcp-poisoned")

    def answered() -> list[tuple[object, object]]:
        lasts = [target(censorlab.status(), n)["last"] for n in names]
        return [(last["facts"].get("ip"), last["stage"]) for last in lasts]

    # the resolver restarts with each phase switch: an attempt in that moment fails at resolve, so wait
    # for attempts that got an answer
    deadline = time.monotonic() + 20
    while answered() != [(POISON_IP, "connect")] * 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert answered() == [(POISON_IP, "connect")] * 3


def test_a_flow_cut_after_some_kilobytes_in_https_and_throughput_targets_is_flow_cut(
    censorlab: CensorLab,
) -> None:
    """The censor freezes downloads from one server after CUT_BYTES: the flows carried data, the reference
    downloaded everything, so the cut is ``flow_cut`` with its cut point (the throughput target's frozen
    download is a cut, not a slow one: nothing came for a third of its budget)."""
    censorlab.set_phase("censored")
    cut = ("blocked", "flow_cut")
    status = censorlab.wait_for({**CONTROLS, "https-cut": cut, "throughput-cut": cut})
    for name, stage in (("https-cut", "http"), ("throughput-cut", "transfer")):
        last = target(status, name)["last"]
        assert last["stage"] == stage, (name, last)
        assert 0 < last["facts"]["cut_after_bytes"] <= CUT_BYTES + 64 * 1024, (name, last["facts"])


def test_a_forged_reference_answer_from_a_path_attacker_is_rejected_and_logged_once(
    censorlab: CensorLab,
) -> None:
    """The censor answers in the reference's place over TLS the vantage trusts (it holds a certificate
    for the reference's address from the CA the vantage was told to trust), saying every target was
    reached: the signature does not verify with the pinned key, so the answer is dropped: the dead server
    is not turned into a forged-RST "blocked", the drop loses its reference evidence, and one error line
    names the rejection however many answers were forged."""
    censorlab.set_phase("forged_reference")
    status = censorlab.wait_for(
        {**CONTROLS, "dead": ("unreachable", None), "dropped": ("unreachable", None)}, timeout=90
    )
    assert target(status, "dropped")["last"]["failure"] == "generic_timeout_error"
    # another refresh of the reference (every 3 s in the lab): another forged answer, counted, no new line
    rejected_total = 'reachwatch_reference_fetches_total{reference="abroad",result="rejected"}'

    def rejections() -> float:
        lines = [ln for ln in censorlab.metrics().splitlines() if ln.startswith(rejected_total)]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    deadline = time.monotonic() + 20
    while rejections() < 2 and time.monotonic() < deadline:
        time.sleep(1)
    assert rejections() >= 2
    rejected = [
        line for line in censorlab.log_tail("kz", 10**7).splitlines() if "reference_answer_rejected" in line
    ]
    assert len(rejected) == 1, rejected
    assert "forged" in rejected[0]
    censorlab.set_phase("censored")  # the real reference again for whatever runs next
