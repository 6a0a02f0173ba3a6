"""Which failures are worth trying again, and how long to wait first (pure).

Only failures of the moment: AWS throttling, a dropped connection, a timeout, a state lock or
cell lock that stayed busy, the plugin cache raced by a parallel init. Never a failure after the
saved plan was spent (the apply may have changed things halfway): that needs a fresh plan and a
person to read it.
"""

from __future__ import annotations

import re

TRANSIENT = (
    r"throttl", r"rate exceeded", r"too many requests", r"slowdown",
    r"connection reset", r"connection refused", r"broken pipe", r"i/o timeout", r"requesttimeout",
    r"timeout awaiting response", r"tls handshake timeout",
    r"error acquiring the state lock", r"the state is locked by",
    r"cell \S+ is busy", r"cell \S+ is still busy",
    r"failed to install provider",
)
_TRANSIENT_RE = re.compile("|".join(TRANSIENT), re.IGNORECASE)


def is_transient(message: str) -> bool:
    return bool(_TRANSIENT_RE.search(message))


def should_retry(message: str, *, attempt: int, retries: int, plan_spent: bool) -> bool:
    """`attempt` counts from 1; `retries` is --retry N (N more attempts after the first)."""
    return not plan_spent and attempt <= retries and is_transient(message)


def backoff_s(attempt: int, base_s: float = 2.0, cap_s: float = 60.0) -> float:
    """Wait before attempt `attempt + 1`: base, 2x base, 4x base, ... at most `cap_s`."""
    return min(cap_s, base_s * 2 ** (attempt - 1))
