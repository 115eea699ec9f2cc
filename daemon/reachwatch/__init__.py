"""reachwatch: measure from inside a censoring network whether the ways out still work, and how blocked."""

__version__ = "0.1.0"
