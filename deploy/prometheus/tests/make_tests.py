"""Maintainer tool: writes deploy/prometheus/tests/*.test.yml (the promtool rule tests).

The scenarios (input series, evaluation times, which alerts fire with which labels) are written out here
by hand; only the expected *annotations* are rendered from the rule templates by plain substitution of
``{{ $labels.x }}`` and ``{{ $value ... }}`` (with the humanized value given per case), because promtool
compares annotations verbatim. promtool then checks the real Go-template rendering, the labels and the
timing. Run ``python deploy/prometheus/tests/make_tests.py`` after editing an alert's annotations or a
scenario, review the diff, commit the YAML.
"""

import re
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "rules" / "reachwatch-alerts.yml"
OUT = str(HERE) + "/"
rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}


def render(alert, labels, value):
    out = {}
    for k, tmpl in rules[alert]["annotations"].items():

        def sub(m):
            expr = m.group(1).strip()
            if expr.startswith("$labels."):
                return labels.get(expr[len("$labels.") :], "")
            if expr.startswith("$value"):
                return value
            raise ValueError(expr)

        out[k] = re.sub(r"\{\{(.*?)\}\}", sub, tmpl)
    return out


def exp(alert, labels, value=""):
    full = {**labels, **{k: v for k, v in rules[alert]["labels"].items()}}
    return {"exp_labels": full, "exp_annotations": render(alert, full, value)}


def sel(name, labels):
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


class D(yaml.SafeDumper):
    pass


def str_rep(d, s):
    if "\n" in s:
        return d.represent_scalar("tag:yaml.org,2002:str", s, style="|")
    return d.represent_scalar("tag:yaml.org,2002:str", s)


D.add_representer(str, str_rep)

ORDER = [
    "reachwatch-recording",
    "reachwatch-patterns",
    "reachwatch-targets",
    "reachwatch-vantage",
    "reachwatch-daemon",
]


def write(name, doc, header):
    doc = {"rule_files": doc.pop("rule_files"), "group_eval_order": ORDER, **doc}
    with open(OUT + name, "w") as f:
        f.write(header)
        f.write("# group_eval_order: recording groups first, alert rules read their output of the same")
        f.write(" evaluation\n")
        yaml.dump(doc, f, Dumper=D, sort_keys=False, width=200)


V1 = {
    "job": "reachwatch",
    "instance": "vantage-a:10491",
    "vantage": "ir-tehran-1",
    "vantage_role": "in_country",
    "country": "IR",
    "asn": "AS58224",
    "isp": "TCI",
    "city": "Tehran",
}
V2 = {
    **V1,
    "instance": "vantage-b:10491",
    "vantage": "ir-mashhad-1",
    "asn": "AS197207",
    "isp": "MCI",
    "city": "Mashhad",
}


def tgt(v, name, kind, group="default", role="target"):
    return {**v, "target": name, "kind": kind, "group": group, "role": role}


def verdict_series(t, verdict, values):
    """Four verdict series for target t: `verdict` gets `values`, the others the complement."""
    out = []
    comp = " ".join(_complement(values))
    for v in ("reachable", "blocked", "unreachable", "unknown"):
        out.append(
            {
                "series": sel("reachwatch_target_verdict", {**t, "verdict": v}),
                "values": values if v == verdict else comp,
            }
        )
    return out


def _complement(values):
    return ["0x" + p.split("x")[1] if p.startswith("1x") else p for p in values.split()]


HEADER = (
    "# promtool test rules {}: each alert firing and not firing. Annotations are the rendered templates.\n"
)
FILES = ["../rules/reachwatch-recording.yml", "../rules/reachwatch-alerts.yml"]

# ---------------------------------------------------------------- targets
relay = tgt(V1, "relay-a", "tor_relay", "relays")
web_b = tgt(V1, "web-b", "tls", "news")
web_c = tgt(V1, "web-c", "tls", "news")
vpn_d = tgt(V1, "vpn-d", "openvpn", "vpn")
web_ok = tgt(V1, "web-ok", "tls", "news")
blocked_tests = {
    "name": "blocked targets: TargetBlocked after for:, interception separately with the issuer named",
    "interval": "1m",
    "input_series": [
        {
            "series": sel("reachwatch_target_blocked", {**relay, "technique": "tcp_reset"}),
            "values": "_x4 1x40",
        },
        {
            "series": sel("reachwatch_target_blocked", {**web_b, "technique": "tls_interception"}),
            "values": "1x45",
        },
        {
            "series": sel(
                "reachwatch_tls_presented_issuer_info", {**web_b, "issuer": "CN=Qaznet Trust Network"}
            ),
            "values": "1x45",
        },
        {
            "series": sel("reachwatch_target_blocked", {**web_c, "technique": "tls_interception"}),
            "values": "1x45",
        },
        {"series": sel("reachwatch_target_blocked", {**vpn_d, "technique": "throttled"}), "values": "1x45"},
        *[
            {"series": sel("reachwatch_target_interval_seconds", t), "values": "600x45"}
            for t in (relay, web_b, web_c, vpn_d, web_ok)
        ],
    ],
    "alert_rule_test": [
        {"eval_time": "10m", "alertname": "ReachwatchTargetBlocked", "exp_alerts": []},
        {
            "eval_time": "20m",
            "alertname": "ReachwatchTargetBlocked",
            "exp_alerts": [
                exp("ReachwatchTargetBlocked", {**relay, "technique": "tcp_reset", "category": "tor_relays"})
            ],
        },
        {"eval_time": "3m", "alertname": "ReachwatchTLSInterception", "exp_alerts": []},
        {
            "eval_time": "10m",
            "alertname": "ReachwatchTLSInterception",
            "exp_alerts": [
                exp(
                    "ReachwatchTLSInterception",
                    {**web_b, "technique": "tls_interception", "issuer": "CN=Qaznet Trust Network"},
                ),
                exp("ReachwatchTLSInterception", {**web_c, "technique": "tls_interception"}),
            ],
        },
    ],
}
cdn_e = tgt(V1, "cdn-e", "throughput", "cdn")
cdn_f = tgt(V1, "cdn-f", "throughput", "cdn")
throttle_tests = {
    "name": "throttling: a quarter of control throughput for 30m fires, 90% does not",
    "interval": "1m",
    "input_series": [
        {"series": sel("reachwatch_throughput_bytes_per_second", cdn_e), "values": "100000x90"},
        {"series": sel("reachwatch_throughput_control_bytes_per_second", cdn_e), "values": "1000000x90"},
        {"series": sel("reachwatch_throughput_bytes_per_second", cdn_f), "values": "900000x90"},
        {"series": sel("reachwatch_throughput_control_bytes_per_second", cdn_f), "values": "1000000x90"},
        *[
            {"series": sel("reachwatch_target_interval_seconds", t), "values": "600x90"}
            for t in (cdn_e, cdn_f)
        ],
    ],
    "alert_rule_test": [
        {"eval_time": "25m", "alertname": "ReachwatchTargetThrottled", "exp_alerts": []},
        {
            "eval_time": "40m",
            "alertname": "ReachwatchTargetThrottled",
            "exp_alerts": [exp("ReachwatchTargetThrottled", {**cdn_e, "category": "web"}, "10%")],
        },
    ],
}
b1 = tgt(V1, "obfs4-1", "tor_bridge", "bridges")
b2 = tgt(V1, "obfs4-2", "tor_bridge", "bridges")
b3 = tgt(V1, "snowflake-1", "tor_bridge", "bridges")
b4 = tgt(V2, "obfs4-1", "tor_bridge", "bridges")
bridge_tests = {
    "name": "bridges: all obfs4 failing fires; snowflake, and obfs4 on another vantage, do not",
    "interval": "1m",
    "input_series": [
        *verdict_series(b1, "blocked", "1x40"),
        *verdict_series(b2, "unreachable", "1x40"),
        *verdict_series(b3, "reachable", "1x40"),
        *verdict_series(b4, "reachable", "1x40"),
        {"series": sel("reachwatch_tor_transport_info", {**b1, "transport": "obfs4"}), "values": "1x40"},
        {"series": sel("reachwatch_tor_transport_info", {**b2, "transport": "obfs4"}), "values": "1x40"},
        {"series": sel("reachwatch_tor_transport_info", {**b3, "transport": "snowflake"}), "values": "1x40"},
        {"series": sel("reachwatch_tor_transport_info", {**b4, "transport": "obfs4"}), "values": "1x40"},
    ],
    "alert_rule_test": [
        {"eval_time": "10m", "alertname": "ReachwatchBridgeTransportFailing", "exp_alerts": []},
        {
            "eval_time": "20m",
            "alertname": "ReachwatchBridgeTransportFailing",
            "exp_alerts": [
                exp("ReachwatchBridgeTransportFailing", {"vantage": "ir-tehran-1", "transport": "obfs4"}, "2")
            ],
        },
    ],
}
r1 = tgt(V1, "relay-1", "tor_relay", "relays")
r2 = tgt(V1, "relay-2", "tor_relay", "relays")
w1 = tgt(V1, "web-1", "tls", "news")
drop_tests = {
    "name": "category drop: half the Tor relays lost since last week fires; steady web does not",
    "interval": "10m",
    "input_series": [
        *verdict_series(r1, "reachable", "1x1200"),
        {
            "series": sel("reachwatch_target_verdict", {**r2, "verdict": "reachable"}),
            "values": "1x1007 0x200",
        },
        {"series": sel("reachwatch_target_verdict", {**r2, "verdict": "blocked"}), "values": "0x1007 1x200"},
        {"series": sel("reachwatch_target_verdict", {**r2, "verdict": "unreachable"}), "values": "0x1208"},
        {"series": sel("reachwatch_target_verdict", {**r2, "verdict": "unknown"}), "values": "0x1208"},
        *verdict_series(w1, "reachable", "1x1208"),
        *[
            {"series": sel("reachwatch_target_interval_seconds", t), "values": "600x1208"}
            for t in (r1, r2, w1)
        ],
    ],
    "alert_rule_test": [
        {"eval_time": "7d", "alertname": "ReachwatchCategoryDrop", "exp_alerts": []},
        {
            "eval_time": "7d2h",
            "alertname": "ReachwatchCategoryDrop",
            "exp_alerts": [
                exp(
                    "ReachwatchCategoryDrop",
                    {k: V1[k] for k in ("vantage", "vantage_role", "country", "asn", "isp", "city")}
                    | {"category": "tor_relays"},
                    "50%",
                )
            ],
        },
    ],
}
write(
    "targets.test.yml",
    {
        "rule_files": FILES,
        "evaluation_interval": "1m",
        "tests": [blocked_tests, throttle_tests, bridge_tests],
    },
    HEADER.format("targets"),
)
RS = {**V1, "set": "guards"}
relayset_tests = {
    "name": "relay set drop: guards 100 -> 55 of 100 fires; exits at 90 of 100 both weeks do not",
    "interval": "10m",
    "input_series": [
        {"series": sel("reachwatch_tor_relayset_probed", {**RS, "flag": "all"}), "values": "100x1208"},
        {
            "series": sel("reachwatch_tor_relayset_reachable", {**RS, "flag": "all"}),
            "values": "100x1007 55x200",
        },
        {"series": sel("reachwatch_tor_relayset_probed", {**RS, "flag": "Guard"}), "values": "100x1208"},
        {
            "series": sel("reachwatch_tor_relayset_reachable", {**RS, "flag": "Guard"}),
            "values": "100x1007 55x200",
        },
        {
            "series": sel("reachwatch_tor_relayset_probed", {**RS, "set": "exits", "flag": "all"}),
            "values": "100x1208",
        },
        {
            "series": sel("reachwatch_tor_relayset_reachable", {**RS, "set": "exits", "flag": "all"}),
            "values": "90x1208",
        },
    ],
    "alert_rule_test": [
        {"eval_time": "7d", "alertname": "ReachwatchTorRelaySetDrop", "exp_alerts": []},
        {
            "eval_time": "7d2h",
            "alertname": "ReachwatchTorRelaySetDrop",
            "exp_alerts": [exp("ReachwatchTorRelaySetDrop", {**RS, "flag": "all"}, "55%")],
        },
    ],
}
RC = {**V1, "set": "network"}


def country_series(country, relays, reachable):
    """relays/probed/reachable series of one country of the relay set ``network``."""
    labels = {**RC, "country": country}
    return [
        {"series": sel("reachwatch_tor_relayset_country_relays", labels), "values": f"{relays}x1208"},
        {"series": sel("reachwatch_tor_relayset_country_probed", labels), "values": f"{relays}x1208"},
        {"series": sel("reachwatch_tor_relayset_country_reachable", labels), "values": reachable},
    ]


country_tests = {
    "name": "relay country drop: xb 40 -> 8 of 40 fires; xa 60 of 60 holds; cc with 5 relays never pages",
    "interval": "10m",
    "input_series": [
        *country_series("xb", 40, "40x1007 8x200"),
        *country_series("xa", 60, "60x1208"),
        *country_series("cc", 5, "5x1007 0x200"),
    ],
    "alert_rule_test": [
        {"eval_time": "7d", "alertname": "ReachwatchTorRelayCountryDrop", "exp_alerts": []},
        {
            "eval_time": "7d2h",
            "alertname": "ReachwatchTorRelayCountryDrop",
            "exp_alerts": [exp("ReachwatchTorRelayCountryDrop", {**RC, "country": "xb"}, "20%")],
        },
    ],
}
write(
    "category-drop.test.yml",
    {"rule_files": FILES, "evaluation_interval": "10m", "tests": [drop_tests, relayset_tests, country_tests]},
    HEADER.format("week-over-week category drop (8 days of input, evaluated every 10m)"),
)


# ---------------------------------------------------------------- vantage and daemon
def vstate(v, state, values, length=40):
    out = []
    for s in ("online", "international_shutdown", "offline", "unknown"):
        out.append(
            {
                "series": sel("reachwatch_vantage_state", {**v, "state": s}),
                "values": values if s == state else " ".join(_complement(values)),
            }
        )
    return out


SHUTDOWN2 = {**V2, "scope_type": "vantage", "scope": "ir-mashhad-1", "technique": "international_shutdown"}
vantage_state_tests = {
    "name": "vantage states: offline after 10m, international shutdown after 5m; online vantage quiet",
    "interval": "1m",
    "input_series": [
        {"series": sel("reachwatch_vantage_state", {**V1, "state": "online"}), "values": "1x10 0x30"},
        {"series": sel("reachwatch_vantage_state", {**V1, "state": "offline"}), "values": "0x10 1x30"},
        {
            "series": sel("reachwatch_vantage_state", {**V1, "state": "international_shutdown"}),
            "values": "0x40",
        },
        {"series": sel("reachwatch_vantage_state", {**V2, "state": "online"}), "values": "1x5 0x35"},
        {
            "series": sel("reachwatch_vantage_state", {**V2, "state": "international_shutdown"}),
            "values": "0x5 1x35",
        },
        {"series": sel("reachwatch_vantage_state", {**V2, "state": "offline"}), "values": "0x40"},
        # the daemon's shutdown incident of V2 began at 00:05 (unix 300), its series from then on
        {
            "series": sel("reachwatch_incident_open_since_timestamp_seconds", SHUTDOWN2),
            "values": "_x5 300x35",
        },
    ],
    "alert_rule_test": [
        {"eval_time": "15m", "alertname": "ReachwatchVantageOffline", "exp_alerts": []},
        {
            "eval_time": "25m",
            "alertname": "ReachwatchVantageOffline",
            "exp_alerts": [exp("ReachwatchVantageOffline", {**V1, "state": "offline"})],
        },
        {"eval_time": "8m", "alertname": "ReachwatchInternationalShutdown", "exp_alerts": []},
        {
            "eval_time": "15m",
            "alertname": "ReachwatchInternationalShutdown",
            "exp_alerts": [exp("ReachwatchInternationalShutdown", {**V2, "state": "international_shutdown"})],
        },
        {"eval_time": "5m", "alertname": "ReachwatchShutdownIncident", "exp_alerts": []},
        {
            "eval_time": "8m",
            "alertname": "ReachwatchShutdownIncident",
            "exp_alerts": [exp("ReachwatchShutdownIncident", SHUTDOWN2, "1970-01-01 00:05:00 +0000 UTC")],
        },
    ],
}
t1 = tgt(V1, "t1", "tcp")
t2 = tgt(V2, "t2", "tcp")
BUILD = {"version": "0.1.0", "revision": "0123456789ab"}
silent_tests = {
    "name": "vantage silent: scrapes stop (ir-tehran-1) or probes stop (ir-mashhad-1)",
    "interval": "1m",
    "input_series": [
        {"series": sel("reachwatch_build_info", {**V1, **BUILD}), "values": "1x10 _x40"},
        {"series": sel("reachwatch_target_last_probe_timestamp_seconds", t1), "values": "0+60x10 _x40"},
        {"series": sel("reachwatch_target_interval_seconds", t1), "values": "60x10 _x40"},
        {"series": sel("reachwatch_build_info", {**V2, **BUILD}), "values": "1x50"},
        {"series": sel("reachwatch_target_last_probe_timestamp_seconds", t2), "values": "0x50"},
        {"series": sel("reachwatch_target_interval_seconds", t2), "values": "60x50"},
    ],
    "alert_rule_test": [
        {"eval_time": "5m", "alertname": "ReachwatchVantageSilent", "exp_alerts": []},
        {
            "eval_time": "30m",
            "alertname": "ReachwatchVantageSilent",
            "exp_alerts": [
                exp("ReachwatchVantageSilent", {"vantage": "ir-tehran-1"}, "20m 0s"),
                exp("ReachwatchVantageSilent", {"vantage": "ir-mashhad-1"}, "30m 0s"),
            ],
        },
    ],
}
t3 = tgt(V1, "t3", "tcp")
daemon_tests = {
    "name": "daemon: failed reload, a stuck target, journal write errors, reference lost, late starts",
    "interval": "1m",
    "input_series": [
        {"series": sel("reachwatch_config_last_reload_successful", V1), "values": "1x5 0x40"},
        {"series": sel("reachwatch_config_last_reload_successful", V2), "values": "1x45"},
        {"series": sel("reachwatch_target_last_probe_timestamp_seconds", t1), "values": "0x60"},
        {"series": sel("reachwatch_target_interval_seconds", t1), "values": "60x60"},
        {"series": sel("reachwatch_target_last_probe_timestamp_seconds", t3), "values": "0+60x60"},
        {"series": sel("reachwatch_target_interval_seconds", t3), "values": "60x60"},
        {"series": sel("reachwatch_journal_write_errors_total", V1), "values": "0x10 1x30"},
        {"series": sel("reachwatch_journal_write_errors_total", V2), "values": "0x40"},
        # the reference abroad answers V2 throughout; V1 loses it after 10 minutes
        {"series": sel("reachwatch_reference_up", {**V1, "reference": "abroad"}), "values": "1x10 0x50"},
        {"series": sel("reachwatch_reference_up", {**V2, "reference": "abroad"}), "values": "1x60"},
        # V1 starts attempts 5 minutes late after 10 minutes (2 attempts a minute); V2 on time
        {"series": sel("reachwatch_scheduler_start_lag_seconds_sum", V1), "values": "0+1x10 10+600x50"},
        {"series": sel("reachwatch_scheduler_start_lag_seconds_count", V1), "values": "0+2x60"},
        {"series": sel("reachwatch_scheduler_start_lag_seconds_sum", V2), "values": "0+1x60"},
        {"series": sel("reachwatch_scheduler_start_lag_seconds_count", V2), "values": "0+2x60"},
    ],
    "alert_rule_test": [
        {"eval_time": "8m", "alertname": "ReachwatchConfigReloadFailed", "exp_alerts": []},
        {
            "eval_time": "15m",
            "alertname": "ReachwatchConfigReloadFailed",
            "exp_alerts": [exp("ReachwatchConfigReloadFailed", V1)],
        },
        {"eval_time": "20m", "alertname": "ReachwatchProbesStuck", "exp_alerts": []},
        {
            "eval_time": "40m",
            "alertname": "ReachwatchProbesStuck",
            "exp_alerts": [exp("ReachwatchProbesStuck", t1, "40m 0s")],
        },
        {"eval_time": "5m", "alertname": "ReachwatchJournalWriteErrors", "exp_alerts": []},
        {
            "eval_time": "12m",
            "alertname": "ReachwatchJournalWriteErrors",
            "exp_alerts": [exp("ReachwatchJournalWriteErrors", V1)],
        },
        {"eval_time": "35m", "alertname": "ReachwatchReferenceUnreachable", "exp_alerts": []},
        {
            "eval_time": "45m",
            "alertname": "ReachwatchReferenceUnreachable",
            "exp_alerts": [exp("ReachwatchReferenceUnreachable", {**V1, "reference": "abroad"})],
        },
        {"eval_time": "30m", "alertname": "ReachwatchSchedulerLagging", "exp_alerts": []},
        {
            "eval_time": "59m",
            "alertname": "ReachwatchSchedulerLagging",
            "exp_alerts": [exp("ReachwatchSchedulerLagging", V1, "5m 0s")],
        },
    ],
}
ports1 = tgt(V1, "ports-abroad", "port_survey")
ports2 = tgt(V2, "ports-abroad", "port_survey")
stale2 = tgt(V2, "ports-stale", "port_survey")
ports_tests = {
    "name": "a port found open during a shutdown: informational after 2m; an older survey or an online "
    "vantage is quiet",
    "interval": "1m",
    "input_series": [
        *vstate(V1, "online", "1x40"),
        *vstate(V2, "international_shutdown", "0x5 1x35"),
        {"series": sel("reachwatch_vantage_state_change_timestamp_seconds", V1), "values": "0x40"},
        {"series": sel("reachwatch_vantage_state_change_timestamp_seconds", V2), "values": "0x5 300x35"},
        # ir-mashhad-1: the shutdown begins at 00:05; a survey at 00:10 finds 179/tcp open, 443 not
        {"series": sel("reachwatch_target_last_probe_timestamp_seconds", ports2), "values": "0x9 600x31"},
        {"series": sel("reachwatch_port_open", {**ports2, "proto": "tcp", "port": "179"}), "values": "1x40"},
        {
            "series": sel("reachwatch_port_open", {**ports2, "proto": "tcp", "port": "443"}),
            "values": "1x9 0x31",
        },
        # a survey last run before the shutdown (00:00) says nothing about it
        {"series": sel("reachwatch_target_last_probe_timestamp_seconds", stale2), "values": "0x40"},
        {"series": sel("reachwatch_port_open", {**stale2, "proto": "tcp", "port": "22"}), "values": "1x40"},
        # ir-tehran-1 is online: its open ports are the baseline, not news
        {"series": sel("reachwatch_target_last_probe_timestamp_seconds", ports1), "values": "0+60x40"},
        {"series": sel("reachwatch_port_open", {**ports1, "proto": "tcp", "port": "443"}), "values": "1x40"},
    ],
    "alert_rule_test": [
        {"eval_time": "9m", "alertname": "ReachwatchPortOpenDuringShutdown", "exp_alerts": []},
        {"eval_time": "11m", "alertname": "ReachwatchPortOpenDuringShutdown", "exp_alerts": []},
        {
            "eval_time": "13m",
            "alertname": "ReachwatchPortOpenDuringShutdown",
            "exp_alerts": [
                exp("ReachwatchPortOpenDuringShutdown", {**ports2, "proto": "tcp", "port": "179"})
            ],
        },
    ],
}
write(
    "vantage-daemon.test.yml",
    {
        "rule_files": FILES,
        "evaluation_interval": "1m",
        "tests": [vantage_state_tests, silent_tests, daemon_tests, ports_tests],
    },
    HEADER.format("vantage and daemon"),
)

# ---------------------------------------------------------------- recording rules
kinds = [
    ("tor_relay", "target", "tor_relays"),
    ("tor_bridge", "target", "tor_bridges"),
    ("snowflake_broker", "target", "tor_other"),
    ("openvpn", "target", "vpn"),
    ("wireguard", "target", "vpn"),
    ("socks5", "target", "proxy"),
    ("shadowsocks", "target", "proxy"),
    ("tls", "target", "web"),
    ("carrier_pigeon", "target", "other"),
    ("tcp", "international_control", "control"),
]
cat_series, cat_exp = [], []
for i, (kind, role, cat) in enumerate(kinds):
    t = tgt(V1, f"k{i}", kind, role=role)
    cat_series.append({"series": sel("reachwatch_target_interval_seconds", t), "values": "600x30"})
    cat_exp.append({"labels": sel("reachwatch:target_category:info", {**t, "category": cat}), "value": 1})
recording_tests = {
    "name": "recording rules: category from kind/role, verdict code, hour x weekday pattern",
    "interval": "1m",
    "input_series": [
        *cat_series,
        *verdict_series(tgt(V1, "rec-blocked", "tls"), "blocked", "1x1300"),
        *verdict_series(tgt(V1, "rec-ok", "tls"), "reachable", "1x1300"),
        *verdict_series(tgt(V1, "rec-unknown", "tls"), "unknown", "1x1300"),
        # a vantage where nothing is known yet (all unknown): no ratio sample at all, not NaN
        *verdict_series(tgt(V2, "rec-unknown-2", "tls"), "unknown", "1x1300"),
        {
            "series": sel("reachwatch_target_interval_seconds", tgt(V2, "rec-unknown-2", "tls")),
            "values": "600x1300",
        },
    ],
    "promql_expr_test": [
        {
            "expr": 'reachwatch:target_category:info{vantage="ir-tehran-1"}',
            "eval_time": "5m",
            "exp_samples": cat_exp,
        },
        {
            "expr": 'reachwatch:target_verdict:code{target=~"rec-.*", vantage="ir-tehran-1"}',
            "eval_time": "5m",
            "exp_samples": [
                {"labels": sel("reachwatch:target_verdict:code", tgt(V1, "rec-blocked", "tls")), "value": 3},
                {"labels": sel("reachwatch:target_verdict:code", tgt(V1, "rec-ok", "tls")), "value": 1},
                {"labels": sel("reachwatch:target_verdict:code", tgt(V1, "rec-unknown", "tls")), "value": 0},
            ],
        },
        # unknown is left out of the ratio: one blocked of two known
        {
            "expr": "reachwatch:vantage_blocked:ratio",
            "eval_time": "5m",
            "exp_samples": [
                {
                    "labels": sel(
                        "reachwatch:vantage_blocked:ratio",
                        {k: V1[k] for k in ("vantage", "vantage_role", "country", "asn", "isp", "city")},
                    ),
                    "value": 0.5,
                }
            ],
        },
        {
            "expr": 'reachwatch:vantage_blocked:ratio{vantage="ir-mashhad-1"}',
            "eval_time": "5m",
            "exp_samples": [],
        },
        {
            "expr": 'reachwatch:category_reachable:ratio{vantage="ir-mashhad-1"}',
            "eval_time": "5m",
            "exp_samples": [],
        },
        # t=0 is Thursday 1970-01-01 00:00 UTC: at 20:30 the pattern series carries hour 20 and weekday Thu
        {
            "expr": "reachwatch:vantage_blocked:ratio_by_hour_dow",
            "eval_time": "20h30m",
            "exp_samples": [
                {
                    "labels": sel(
                        "reachwatch:vantage_blocked:ratio_by_hour_dow",
                        {k: V1[k] for k in ("vantage", "vantage_role", "country", "asn", "isp", "city")}
                        | {"hour": "20", "dow": "4 Thu"},
                    ),
                    "value": 0.5,
                }
            ],
        },
    ],
}
write(
    "recording.test.yml",
    {"rule_files": FILES, "evaluation_interval": "1m", "tests": [recording_tests]},
    HEADER.format("recording rules"),
)
