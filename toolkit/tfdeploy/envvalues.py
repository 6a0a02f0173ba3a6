"""Numbers read from the environment (pure): one rule and one error line for every such setting."""

from __future__ import annotations

import math
from typing import Mapping

from .errors import TfdeployError, ValidationError


def env_seconds(environ: Mapping[str, str], name: str, default: float, *, most: float | None = None,
                zero_ok: bool = True, hint: str = "", error: type[TfdeployError] = ValidationError) -> float:
    """Seconds from `environ[name]` (unset or blank: `default`): from 0 (or above 0 when not
    `zero_ok`) up to `most` (None: any finite number). Anything else raises `error` in one line
    naming the variable, what it must be and `hint` (what to set instead)."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    low_ok = value >= 0 if zero_ok else value > 0
    if not (low_ok and math.isfinite(value) and (most is None or value <= most)):
        low = "from 0" if zero_ok else "above 0"
        wanted = f"{low} to {most:g}" if most is not None else low
        raise error(f"{name}={raw!r} is not a number of seconds {wanted}" + (f"; {hint}" if hint else ""))
    return value
