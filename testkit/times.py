"""When the engine says things happened: dockerd's RFC 3339 times (UTC, up to nanoseconds) as Unix seconds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MICRO_DIGITS = 6


def engine_time(stamp: str) -> float:
    """An engine timestamp (`2026-12-07T12:09:59.909153484Z`) as Unix seconds, to the microsecond."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    fraction = fraction.split("+")[0]
    seconds = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()  # the engine writes UTC
    return seconds + int(f"{fraction:0<{MICRO_DIGITS}}"[:MICRO_DIGITS]) / 10**MICRO_DIGITS


def created_at(attrs: dict[str, Any]) -> float:
    """When dockerd created a container (its inspect data), in Unix seconds."""
    return engine_time(attrs["Created"])


def first_healthy_at(attrs: dict[str, Any]) -> float:
    """When a container's first passing probe ended (Unix seconds): it was healthy by then.

    dockerd keeps a container's last five probes: read it while the first passing one is among them.
    """
    probes = attrs["State"]["Health"]["Log"]
    return engine_time(next(probe["End"] for probe in probes if probe["ExitCode"] == 0))
