"""archiver.times: the run clock's text sorts like time, days end where the reader's day ends."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from archiver.times import end_of_day, epoch_iso, now_iso, utc_iso, utc_now


def test_run_clock_text_order_is_time_order_whatever_the_offset_or_microseconds() -> None:
    rng = random.Random(14)
    base = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    moments = [
        base + timedelta(seconds=rng.randrange(-5, 5), microseconds=rng.choice([0, 1, 999999])) for _ in range(200)
    ]
    shown = [m.astimezone(timezone(timedelta(hours=rng.randrange(-12, 14)))) for m in moments]
    assert sorted(shown, key=utc_iso) == sorted(moments)
    assert utc_iso(datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-11-20T08:00:00.000000+00:00"
    )


def test_end_of_day_is_the_last_microsecond_in_the_zone_asked_for() -> None:
    berlin = end_of_day(date(2024, 5, 31), ZoneInfo("Europe/Berlin"))
    assert berlin.isoformat() == "2024-05-31T23:59:59.999999+02:00"
    local = end_of_day(date(2024, 5, 31))
    assert local == datetime(2024, 5, 31, 23, 59, 59, 999999).astimezone()
    assert local.utcoffset() is not None  # aware: comparable with the run clock


def test_times_for_people_are_utc_to_the_second() -> None:
    assert epoch_iso(0) == "1970-01-01T00:00:00+00:00"
    assert epoch_iso(1_700_000_000.9) == "2023-11-14T22:13:20+00:00"
    now = datetime.fromisoformat(now_iso())
    assert now.microsecond == 0 and abs((utc_now() - now).total_seconds()) < 5
