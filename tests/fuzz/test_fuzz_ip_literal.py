"""``is_ip_literal`` answers as ``ipaddress.ip_address`` does for any text, including the near misses its
fast path for dotted quads and names has to refuse (leading zeros, short forms, non-ASCII digits)."""

from __future__ import annotations

import ipaddress

from hypothesis import example, given
from hypothesis import strategies as st

from reachwatch.config.types import is_ip_literal


def _ipaddress_says(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


OCTET = st.integers(min_value=0, max_value=300).map(str) | st.text("0123456789", max_size=4)
DOTTED = st.lists(OCTET, min_size=0, max_size=6).map(".".join)
NEAR = st.text(alphabet="0123456789.:abcdefx[]% \u0663\uff11", max_size=16)


@given(host=DOTTED | NEAR | st.ip_addresses().map(str) | st.text(max_size=20))
@example(host="01.2.3.4")
@example(host="1.2.3")
@example(host="256.1.1.1")
@example(host="\u0661.2.3.4")
@example(host="fe80::1%eth0")
@example(host="[::ffff:1.2.3.4]")
@example(host="")
def test_is_ip_literal_agrees_with_ipaddress_on_any_text(host: str) -> None:
    assert is_ip_literal(host) == _ipaddress_says(host)
