"""Our small Grafana dashboard generator (see grafana/generate.py)."""
