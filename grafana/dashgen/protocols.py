"""The protocol dashboards: Tor, VPN and proxies, Interference (how each kind of target is doing)."""

from __future__ import annotations

from dashgen.panels import (
    ANY_BAD,
    CODES,
    GOOD_HIGH,
    GREEN,
    JOIN,
    NEUTRAL,
    ORANGE,
    RED,
    SLOW,
    VERDICT_MAP,
    Panel,
    Query,
    T,
    V,
    bargauge,
    hide_columns,
    instant_table,
    status_history,
    steps,
    table,
    timeseries,
)

TOR = 'category=~"tor_.*"'


def tor() -> list[Panel]:
    return [
        timeseries(
            "Reachable Tor targets by category (fraction)",
            "Fraction of individually configured relays, bridges and other Tor targets (with per-target "
            "series) that are reachable. Kazakhstan 2022: relay reachability fell by about 40% while "
            "bridge use rose.",
            [Query(f"reachwatch:category_reachable:ratio{{{V}, {TOR}}}", "{{vantage}} {{category}}")],
            "percentunit",
            GOOD_HIGH,
            min=0,
            max=1,
            width=24,
        ),
        timeseries(
            "Reachable relays per set and flag",
            "Relay sets (a consensus or Onionoo sample, the directory authorities): the fraction of relays "
            "whose last attempt reached the ORPort and verified the identity, per set and consensus flag "
            "(`all` = every member). Aggregated in the daemon, so 7,000 relays are a handful of series.",
            [
                Query(
                    f"reachwatch:tor_relayset_reachable:ratio{{{V}}}",
                    "{{vantage}} {{set}} {{flag}}",
                    needs=("tor_relay",),
                )
            ],
            "percentunit",
            GOOD_HIGH,
            min=0,
            max=1,
        ),
        timeseries(
            "Reachable relays by country",
            "The share of each relay set's relays that works from here, per country of the relay (the "
            "largest countries by name, then `unknown` and `other`; GeoIP from tor-geoipdb, ip2asn or "
            "Onionoo). A censor that blocks relays hosted in some countries shows here first.",
            [
                Query(
                    f"reachwatch:tor_relayset_country_reachable:ratio{{{V}}}",
                    "{{vantage}} {{set}} {{country}}",
                    needs=("tor_relay",),
                )
            ],
            "percentunit",
            GOOD_HIGH,
            min=0,
            max=1,
        ),
        timeseries(
            "Reachable relays by AS",
            "The same share per autonomous system of the relay (the largest by name, then `unknown` and "
            "`other`): blocking aimed at hosting networks rather than at Tor as a whole.",
            [
                Query(
                    f"reachwatch:tor_relayset_as_reachable:ratio{{{V}}}",
                    "{{vantage}} {{set}} {{asn}}",
                    needs=("tor_relay",),
                )
            ],
            "percentunit",
            GOOD_HIGH,
            min=0,
            max=1,
        ),
        table(
            "Relay verdicts and techniques by country and AS",
            "How the relays of each set are judged now, per country and AS of the relay (`by`): confirmed "
            "verdict and, for blocked ones, the technique (reset, blackhole, TLS interception ...).",
            instant_table(
                f'reachwatch_tor_relayset_outcomes{{{V}, by=~"country|asn"}} > 0', needs=("tor_relay",)
            ),
            "none",
            ANY_BAD,
            transformations=[hide_columns("Time", "__name__", "job", "instance")],
        ),
        table(
            "Relay-set failures by stage",
            "How the relays of each set fail now: identity mismatch, link handshake, reset, timeout.",
            instant_table(f"reachwatch_tor_relayset_failed{{{V}}} > 0", needs=("tor_relay",)),
            "none",
            ANY_BAD,
            transformations=[hide_columns("Time", "__name__", "job", "instance")],
        ),
        status_history(
            "Tor targets",
            "Verdict of each relay, directory authority and bridge over time.",
            [
                Query(
                    f"reachwatch:target_verdict:code{{{T}}} * {JOIN}{{{TOR}}}",
                    "{{target}} @ {{vantage}}",
                    needs=("tor_relay",),
                )
            ],
            unit="none",
            thresholds=CODES,
            mappings=VERDICT_MAP,
            width=24,
            height=10,
        ),
        bargauge(
            "Bridges by transport",
            "Bridges per pluggable transport (vanilla, obfs4, snowflake, webtunnel, meek) by verdict: when "
            "every bridge of one transport fails, users of that transport are cut off.",
            [
                Query(
                    "count by (vantage, transport, verdict) ("
                    f'(reachwatch_target_verdict{{{V}, kind="tor_bridge", verdict!="unknown"}} == 1) '
                    "* on (job, instance, target) group_left (transport) reachwatch_tor_transport_info)",
                    "{{vantage}} {{transport}} {{verdict}}",
                    needs=("tor_bridge",),
                )
            ],
            "none",
            NEUTRAL,
            min=0,
        ),
        timeseries(
            "Bootstrap time",
            "Time a fresh tor took to bootstrap (to 100%, or until it stalled), per bootstrap target and "
            "transport.",
            [
                Query(
                    f"reachwatch_tor_bootstrap_seconds{{{T}}} "
                    "* on (job, instance, target) group_left (transport) reachwatch_tor_transport_info",
                    "{{target}} ({{transport}})",
                    needs=("tor_bootstrap",),
                )
            ],
            "s",
            steps((None, GREEN), (30, ORANGE), (90, RED)),
            min=0,
        ),
        table(
            "Bootstrap progress and stall phase",
            "How far the last bootstrap got (percent) and the phase it reached: `done`, or where it "
            "stalled (conn = the first hop never answered, handshake = TLS/link blocked, requesting_status "
            "/ loading_descriptors = directory fetches blocked, circuit phases = relays blocked).",
            instant_table(
                f"reachwatch_tor_bootstrap_progress_percent{{{T}}} "
                "* on (job, instance, target) group_left (phase) reachwatch_tor_bootstrap_phase_info",
                needs=("tor_bootstrap",),
            ),
            "percent",
            steps((None, RED), (100, GREEN)),
            transformations=[hide_columns("Time", "__name__", "job", "instance")],
        ),
        timeseries(
            "Tor handshake stages",
            "Time to connect, finish TLS and complete the Tor link handshake per relay (last attempt).",
            [
                Query(
                    f'reachwatch_probe_stage_duration_seconds{{{T}, kind=~"tor_.*"}}',
                    "{{target}} {{stage}}",
                    needs=("tor_relay",),
                )
            ],
            "s",
            SLOW,
        ),
        table(
            "Tor failures (last hour)",
            "Why Tor targets failed: identity mismatch (an impostor or TLS middlebox), link handshake "
            "failure, reset, timeout.",
            instant_table(
                "sum by (vantage, kind, stage, failure) "
                f'(increase(reachwatch_probe_failures_total{{{V}, kind=~"tor_.*"}}[1h])) > 0',
                needs=("tor_relay",),
            ),
            "none",
            ANY_BAD,
            transformations=[hide_columns("Time")],
            width=24,
        ),
    ]


VPNP = 'category=~"vpn|proxy"'


def vpn_proxy() -> list[Panel]:
    return [
        bargauge(
            "Reachable by protocol",
            "Fraction of endpoints of each protocol (OpenVPN, WireGuard, Shadowsocks, SOCKS5, HTTP proxy...) "
            "whose last attempt succeeded.",
            [
                Query(
                    f"avg by (vantage, kind) (reachwatch_probe_success{{{T}}} * {JOIN}{{{VPNP}}})",
                    "{{vantage}} {{kind}}",
                    needs=("openvpn", "socks5"),
                )
            ],
            "percentunit",
            GOOD_HIGH,
            min=0,
            max=1,
        ),
        timeseries(
            "Handshake time",
            "Time of the protocol handshake (and TLS, where the protocol has one) per endpoint.",
            [
                Query(
                    "reachwatch_probe_stage_duration_seconds"
                    f'{{{T}, stage=~"protocol_handshake|tls_handshake"}} * {JOIN}{{{VPNP}}}',
                    "{{target}} ({{kind}}) {{stage}}",
                    needs=("socks5",),
                )
            ],
            "s",
            SLOW,
        ),
        status_history(
            "Endpoints",
            "Verdict of each VPN endpoint and proxy over time.",
            [
                Query(
                    f"reachwatch:target_verdict:code{{{T}}} * {JOIN}{{{VPNP}}}",
                    "{{target}} ({{kind}}) @ {{vantage}}",
                    needs=("openvpn", "socks5"),
                )
            ],
            unit="none",
            thresholds=CODES,
            mappings=VERDICT_MAP,
            width=24,
            height=10,
        ),
        timeseries(
            "Tunnel throughput",
            "Round-trip throughput of the canary push through each tunnel or proxy (bytes per second): a "
            "tunnel that completes its handshake but is cut or crawls after a few kilobytes is useless.",
            [
                Query(
                    f"reachwatch_throughput_bytes_per_second{{{T}}} * {JOIN}{{{VPNP}}}",
                    "{{target}} ({{kind}})",
                    needs=("socks5",),
                ),
            ],
            "Bps",
            NEUTRAL,
            width=24,
        ),
    ]


def interference() -> list[Panel]:
    return [
        table(
            "TLS interception: presented issuer",
            "Targets whose certificate failed validation or the pin, with the issuer that signed the "
            "substitute certificate (a national CA, a middlebox).",
            instant_table(f"reachwatch_tls_presented_issuer_info{{{T}}}"),
            "none",
            NEUTRAL,
            transformations=[hide_columns("Time", "Value", "__name__", "job", "instance")],
            width=24,
        ),
        timeseries(
            "Blocked targets by technique over time",
            "Blocked targets per technique: when did interception, resets or DNS tampering start?",
            [
                Query(
                    f"sum by (vantage, technique) (reachwatch_target_blocked{{{T}}})",
                    "{{vantage}} {{technique}}",
                )
            ],
            "none",
            ANY_BAD,
            min=0,
        ),
        timeseries(
            "DNS failures",
            "Failed DNS lookups by failure (NXDOMAIN, bogon answer, answer mismatch, SERVFAIL...): "
            "DNS tampering shows up here first.",
            [
                Query(
                    "sum by (vantage, target, failure) (increase(reachwatch_probe_failures_total"
                    f'{{{T}, failure=~"dns_.*"}}[$__rate_interval]))',
                    "{{target}} {{failure}}",
                    needs=("dns",),
                )
            ],
            "none",
            ANY_BAD,
            min=0,
        ),
        timeseries(
            "Throughput against control",
            "Target throughput divided by the control transfer's (1 = same speed). Throttling keeps this "
            "well below 1 (the threshold is the target's max_ratio, 0.25 by default).",
            [
                Query(
                    f"reachwatch:throughput_vs_control:ratio{{{T}}}",
                    "{{target}} @ {{vantage}}",
                    needs=("throughput",),
                )
            ],
            "percentunit",
            steps((None, RED), (0.25, ORANGE), (0.75, GREEN)),
            min=0,
            width=24,
        ),
    ]
