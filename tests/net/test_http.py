"""net.http: URL parts for one request line and Host header."""

from __future__ import annotations

import pytest

from reachwatch.net.http import Url


@pytest.mark.parametrize(
    ("url", "host", "port", "target", "host_header"),
    [
        ("http://a.test/", "a.test", 80, "/", "a.test"),
        ("https://a.test", "a.test", 443, "/", "a.test"),
        ("https://a.test:8443/p?q=1", "a.test", 8443, "/p?q=1", "a.test:8443"),
        ("http://[2001:db8::1]:8080/x", "2001:db8::1", 8080, "/x", "[2001:db8::1]:8080"),
    ],
)
def test_url_parts(url: str, host: str, port: int, target: str, host_header: str) -> None:
    parsed = Url.parse(url)
    assert (parsed.host, parsed.port, parsed.target, parsed.host_header) == (host, port, target, host_header)


@pytest.mark.parametrize("url", ["ftp://a.test/", "a.test/x", "https:///x"])
def test_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        Url.parse(url)
