"""Property-based fuzzing of every parser of outside input (Hypothesis; profiles in tests/conftest.py).

The invariant everywhere: the input is accepted, or refused with ONE line (a ``ReachwatchError`` naming
file and field, or the parser's own error type); never another exception, never a hang (Hypothesis's
deadline), and no secret from the input in what is printed.
"""

from __future__ import annotations


def one_line(message: str) -> bool:
    return "\n" not in message.strip() and bool(message.strip()) and "Traceback" not in message
