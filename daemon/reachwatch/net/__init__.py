"""The network layer: the only code in reachwatch that touches sockets.

``errors`` classifies failures once; ``dial`` resolves and connects to pinned addresses; the other modules
add one protocol step each (TLS, UDP exchange, HTTP, DNS) on top of those.
"""
