"""The kit's reading of the engine's timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

from testkit.times import created_at, engine_time, first_healthy_at

SECOND = datetime(2026, 12, 7, 12, 9, 59, tzinfo=UTC).timestamp()


def test_engine_time_keeps_microseconds_of_any_fraction() -> None:
    """Nanoseconds cut to microseconds, a short fraction padded, none at all, an offset instead of Z."""
    assert engine_time("2026-12-07T12:09:59.909153484Z") == SECOND + 0.909153
    assert engine_time("2026-12-07T12:09:59.5Z") == SECOND + 0.5
    assert engine_time("2026-12-07T12:09:59Z") == SECOND
    assert engine_time("2026-12-07T12:09:59.25+00:00") == SECOND + 0.25


def test_first_passing_probe_not_the_first_probe() -> None:
    """A probe that failed first (a service still starting) is not when it was healthy."""
    attrs = {
        "Created": "2026-12-07T12:09:58Z",
        "State": {
            "Health": {
                "Log": [
                    {"End": "2026-12-07T12:09:59.1Z", "ExitCode": 1},
                    {"End": "2026-12-07T12:10:01.5Z", "ExitCode": 0},
                    {"End": "2026-12-07T12:10:16Z", "ExitCode": 0},
                ]
            }
        },
    }
    assert created_at(attrs) == SECOND - 1
    assert first_healthy_at(attrs) == SECOND + 2.5
