"""Configuration: schema (``schema``), loading with one-line errors (``load``), secrets (``secrets``)."""
