"""Protocol machinery for VPNs and proxies that is more than one socket step: Shadowsocks AEAD framing and
the tunnel-usability canary. The sockets themselves are still opened by ``reachwatch.net``."""
