"""Exceptions that mean "reachwatch could not run this", as opposed to measurement outcomes.

Exception tree::

    ReachwatchError(Exception)
    ├── ConfigError          bad config, secret or import file; one line naming file and field; exit 2
    ├── UsageError           bad command-line input; exit 2
    └── JournalUnavailable   no journal can be opened in the state directory; exit 2 (journal_store)

Network failures are not here: they are data (``reachwatch.failures.Failure``), raised inside the net
layer as ``reachwatch.net.errors.NetFailure`` and turned into results by ``probes.base.run_probe``.
"""

from __future__ import annotations


class ReachwatchError(Exception):
    """Base of every error reachwatch reports to a user."""


class ConfigError(ReachwatchError):
    """A configuration (or imported file) is unusable. ``str()`` is the one-line message for the user."""

    def __init__(self, source: str, message: str) -> None:
        # one line whatever the parts hold (a YAML problem, a key with a newline): logs and replies
        super().__init__(" ".join(f"{source}: {message}".split()))
        self.source = source
        self.message = message


class UsageError(ReachwatchError):
    """The command line asks for something impossible."""
