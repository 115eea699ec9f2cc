"""Bridge lines as people paste them (cut off, with typos, from the wrong app): parsed, or refused with
one line that quotes nothing from the line (a private bridge's address or cert would reach the log and
the reply of /-/reload)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reachwatch.config.bridgeline import KNOWN_TRANSPORTS, BridgeLineError, parse_bridge_line

from . import one_line

HEX = "0123456789ABCDEFabcdef"
V4 = st.tuples(*[st.integers(0, 300)] * 4).map(lambda t: ".".join(map(str, t)))
V6 = st.sampled_from(["[2001:db8::7]", "[::1]", "[2001:db8:::7]", "2001:db8::7"])
PORT = st.integers(-1, 70000).map(str) | st.sampled_from(["", "443x", "0443"])
ADDRESS = st.builds(lambda h, p: f"{h}:{p}", V4 | V6 | st.text(max_size=15), PORT) | st.text(max_size=20)
FINGERPRINT = st.text(alphabet=HEX, min_size=38, max_size=42) | st.text(alphabet=HEX + "$", max_size=41)
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SECRET = st.text(alphabet=B64, min_size=16, max_size=60)
KEYS = st.sampled_from(["cert", "url", "iat-mode", "front", "ice", "x"])
PARAMS = st.lists(
    st.builds(lambda k, v: f"{k}={v}", KEYS, SECRET)
    | SECRET
    | st.just("iat-mode=0"),
    max_size=4,
)
TRANSPORT = st.sampled_from([*KNOWN_TRANSPORTS, "obfs5", "meek", "Bridge obfs4"]) | st.text(max_size=10)
LINES = st.builds(
    lambda prefix, transport, address, fp, params: " ".join(
        [*prefix, *([transport] if transport else []), address, *([fp] if fp else []), *params]
    ),
    st.sampled_from([[], ["Bridge"], ["bridge"]]),
    st.none() | TRANSPORT,
    ADDRESS,
    st.none() | FINGERPRINT,
    PARAMS,
) | st.text(max_size=120)


@given(LINES)
def test_a_bridge_line_is_parsed_or_refused_without_quoting_it(line: str) -> None:
    try:
        parsed = parse_bridge_line(line)
    except BridgeLineError as exc:
        message = str(exc)
        assert one_line(message), message
        words = line.split()
        first = 1 if words and words[0].lower() == "bridge" else 0
        # everything after the transport name (which a message may name) is the bridge's identity
        for word in words[first + 1 :]:
            for part in (word, *word.split("=", 1)[1:]):
                # addresses, fingerprints and certs; not a plain word the message may use ("bridge")
                if len(part) >= 6 and (len(part) >= 12 or not part.isalpha()):
                    assert part not in message, (part, message)
        return
    assert 1 <= parsed.port <= 65535
    assert parsed.fingerprint is None or len(parsed.fingerprint) == 40
