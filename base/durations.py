"""Durations as every kubedr setting writes them: `500ms`, `10s`, `2m`, `36h`, `7d`, `2w`, sums (`1d12h`), seconds."""

from __future__ import annotations

import re

UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")


class DurationError(ValueError):
    """Not a duration; str() names the setting and shows what one looks like."""


def parse_duration(text: str | float, flag: str = "duration", bare_seconds: bool = True) -> float:
    """Seconds of a duration; a plain number is seconds unless bare_seconds is off (a retention age, where a
    forgotten unit must not silently mean seconds)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if bare_seconds and text >= 0:
            return float(text)
        text = str(text)
    value = str(text)
    if bare_seconds and _NUMBER.fullmatch(value):
        return float(value)
    parts = _PART.findall(value)
    if not parts or _PART.sub("", value).strip():
        raise DurationError(f"{flag} {value!r}: not a duration (use e.g. 500ms, 10s, 2m, 36h, 7d"
                            f"{'' if bare_seconds else '; a unit is required'})")
    return sum(float(n) * UNITS[u] for n, u in parts)
