"""Runtime machinery for VPNs and proxies that is more than one socket step: the Shadowsocks streams, the
tunnel-usability canary and the same-path control. Their wire formats are in ``reachwatch.formats``; the
sockets themselves are opened by ``reachwatch.net``."""
