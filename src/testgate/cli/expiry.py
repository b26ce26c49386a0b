"""Token expiry as people write it: an ISO 8601 duration (``P30D``, ``PT12H``, ``P2W``, ``P1DT6H``) or a date.

Months and years are refused: their length varies, and an expiry should mean exactly what it says.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


def parse_duration(text: str) -> timedelta | None:
    """``P30D`` -> 30 days; None when ``text`` is not a duration of weeks, days, hours, minutes, seconds."""
    match = _DURATION.match(text.strip().upper())
    if match is None or not any(match.groupdict().values()):
        return None
    return timedelta(**{unit: int(n) for unit, n in match.groupdict().items() if n})


def _moment(text: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(text), time.min, UTC)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_expiry(text: str, now: datetime) -> datetime:
    """When a token given ``--expires text`` at ``now`` expires; ``ValueError`` says why it can't be read."""
    delta = parse_duration(text)
    if delta is None and text.strip().upper().startswith("P"):
        raise ValueError(f"{text!r}: use weeks, days, hours, minutes or seconds (P30D, PT12H, P2W, P1DT6H)")
    try:
        moment = now + delta if delta is not None else _moment(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (P30D) nor a date (2027-01-01)") from None
    if moment <= now:
        raise ValueError(f"{text!r} is not in the future")
    return moment
