"""Port lists and the port_survey / canary settings as values: what they accept, what they refuse, and the
budget a survey promises the canary. Invalid files with their exact one-line errors are in testdata/."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from reachwatch.config.ports import SURVIVOR_PORTS, parse_port_label, parse_ports, port_label
from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.config.targets.port_survey import PortSurveyTarget


@pytest.mark.parametrize(
    ("value", "ports"),
    [
        ([443, 22, "8000-8002", 22], (22, 443, 8000, 8001, 8002)),
        ("22, 443,8000-8001", (22, 443, 8000, 8001)),
        ([], ()),
        ("3785", (3785,)),
    ],
)
def test_port_lists_take_numbers_ranges_and_comma_text(value: object, ports: tuple[int, ...]) -> None:
    assert parse_ports(value) == ports


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([0], "port 0 is out of range (1-65535)"),
        (["65536"], "port 65536 is out of range (1-65535)"),
        (["http"], "'http' is not a port or a range such as 8000-8010"),
        ([True], "True is not a port"),
        ("1-1000", "range '1-1000' has more than 256 ports"),
        ([*range(1, 200), "1000-1100"], "more than 256 ports"),
        (443, "expected a list of ports"),
    ],
)
def test_port_lists_refuse_with_a_reason(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_ports(value)


@given(st.sampled_from(["tcp", "udp"]), st.integers(1, 65535))
def test_a_port_label_reads_back(proto: str, port: int) -> None:
    assert parse_port_label(port_label(proto, port)) == (proto, port)


@given(st.text(max_size=20))
def test_any_text_is_a_port_label_or_a_value_error(text: str) -> None:
    try:
        proto, port = parse_port_label(text)
    except ValueError:
        return
    assert port_label(proto, port) == text


def survey(**fields: object) -> PortSurveyTarget:
    return PortSurveyTarget.model_validate(
        {"name": "p", "kind": "port_survey", "host": "canary.example.org", "secret_env": "S", **fields}
    )


def test_a_survey_defaults_to_an_hourly_baseline_and_five_minutes_in_a_shutdown() -> None:
    target = survey()
    assert (target.interval, target.shutdown_interval, target.timeout) == (3600.0, 300.0, 60.0)
    assert target.tcp_ports == target.udp_ports == SURVIVOR_PORTS
    assert {179, 3785, 5060} <= set(SURVIVOR_PORTS)  # what survived in Kazakhstan, January 2022
    assert target.vantage_intervals() == {"international_shutdown": 300.0}
    assert target.destination() == "canary.example.org:0"
    # the canary's count of one survey: a request per TCP port, three datagrams per UDP port and echo
    assert target.packets() == 16 + 3 * (16 + 1)
    assert target.worst_case_seconds() < 60


def test_a_survey_needs_one_secret_and_some_ports() -> None:
    with pytest.raises(ValidationError, match="not both"):
        survey(secret_file="a.secret")
    with pytest.raises(ValidationError, match="no ports to survey"):
        survey(tcp_ports=[], udp_ports=[], icmp=False)


def test_a_tunnel_canary_is_an_echo_service_unless_it_is_a_reachwatch_canary() -> None:
    assert CanaryConfig(host="c", port=7).mode == "echo"
    assert CanaryConfig(host="c", port=7, mode="reachwatch", secret_env="S").has_secret()
    with pytest.raises(ValidationError, match="only used with mode: reachwatch"):
        CanaryConfig(host="c", port=7, secret_env="S")
