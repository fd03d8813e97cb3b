"""Signals: rate of rise, window sums, robust z-scores and silence under adaptive reporting."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.signals import RatePerHour, RobustZ, Silence, WindowSum, robust_z

T0 = datetime(2026, 7, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_rate_per_hour_over_the_window() -> None:
    rate = RatePerHour(3600, min_span_s=1800)
    for m in range(0, 61, 10):
        rate.observe(at(m), 1.0 + 0.01 * m)  # 0.6 m per hour
    value = rate.value_at(at(60))
    assert value is not None
    assert abs(value - 0.6) < 1e-9


def test_rate_needs_enough_span() -> None:
    rate = RatePerHour(3600, min_span_s=1800)
    rate.observe(at(0), 1.0)
    rate.observe(at(10), 2.0)
    assert rate.value_at(at(10)) is None


def test_rate_forgets_old_samples() -> None:
    rate = RatePerHour(3600, min_span_s=600)
    rate.observe(at(0), 0.0)
    for m in range(60, 121, 10):
        rate.observe(at(m), 5.0)  # steep rise long ago, flat since
    assert rate.value_at(at(120)) == 0.0


def test_window_sum_slides_with_time() -> None:
    rain = WindowSum(3600)
    for m in range(60):
        rain.observe(at(m), 1.0)
    assert rain.value_at(at(59)) == 60.0
    assert rain.value_at(at(89)) == 30.0  # the window moved on without new data
    assert rain.value_at(at(200)) == 0.0


def test_window_sum_keeps_out_of_order_readings() -> None:
    rain = WindowSum(3600)
    rain.observe(at(10), 1.0)
    rain.observe(at(5), 2.0)
    rain.observe(at(20), 3.0)
    assert rain.value_at(at(20)) == 6.0
    assert [t for t, _ in rain.samples] == sorted(t for t, _ in rain.samples)


def test_robust_z_flags_a_spike() -> None:
    rng = random.Random(1)
    z = RobustZ(window=60, min_samples=20, min_mad=1e-6)
    for i in range(60):
        z.observe(at(i), 0.01 + rng.gauss(0, 0.001))
    z.observe(at(61), 0.05)
    assert z.value_at(at(61)) is not None
    assert (z.value_at(at(61)) or 0) > 20


def test_robust_z_needs_samples() -> None:
    z = RobustZ(window=60, min_samples=20, min_mad=1e-6)
    for i in range(10):
        z.observe(at(i), 1.0)
    assert z.value_at(at(10)) is None


def test_mad_is_robust_where_the_standard_deviation_is_not() -> None:
    rng = random.Random(2)
    history = [10 + rng.gauss(0, 0.1) for _ in range(80)] + [1000.0] * 15  # 16 % outliers
    z_normal = robust_z(history, 10.05, 20, 1e-9)
    z_spike = robust_z(history, 11.0, 20, 1e-9)
    assert z_normal is not None
    assert z_normal < 3
    assert z_spike is not None
    assert z_spike > 5
    # A mean/stdev z-score is blinded by the outliers: the same spike looks ordinary.
    mean = sum(history) / len(history)
    sd = (sum((v - mean) ** 2 for v in history) / len(history)) ** 0.5
    assert abs(11.0 - mean) / sd < 1


@settings(max_examples=100, deadline=None)
@given(
    base=st.lists(st.floats(min_value=-5, max_value=5), min_size=40, max_size=40),
    outliers=st.lists(st.floats(min_value=-1e6, max_value=1e6), max_size=15),
)
def test_outliers_below_half_cannot_move_the_median_outside_the_data(
    base: list[float], outliers: list[float]
) -> None:
    """With fewer outliers than half the window the median stays inside the clean data,
    however wild the outliers (the breakdown point of the median and MAD)."""
    z = robust_z(base + outliers, 0.0, 20, 1e-3)
    assert z is not None
    reach = max(abs(min(base)), abs(max(base)))
    assert z <= reach / (1.4826 * 1e-3) + 1e-6


def test_silence_in_calm_weather_allows_the_long_interval() -> None:
    silence = Silence(600, grace_s=0, active_above=1.6, active_interval_s=120)
    silence.observe(at(0), 1.0)  # calm: below the trigger level
    assert (silence.value_at(at(15)) or 0) < 3  # 15 minutes quiet is normal
    assert (silence.value_at(at(31)) or 0) > 3  # more than three intervals is not


def test_silence_in_flood_mode_notices_within_minutes() -> None:
    silence = Silence(600, grace_s=0, active_above=1.6, active_interval_s=120)
    silence.observe(at(0), 2.4)  # above the trigger: the gauge reports every 2 minutes
    assert (silence.value_at(at(7)) or 0) > 3  # 7 minutes quiet in a flood is alarming


def test_silence_counts_from_the_start_for_a_device_never_heard() -> None:
    silence = Silence(60)
    assert silence.value_at(at(0)) is None
    silence.start(at(0))
    assert (silence.value_at(at(5)) or 0) == 5


def test_signals_round_trip_their_buffers() -> None:
    rain = WindowSum(3600)
    for m in range(5):
        rain.observe(at(m), float(m))
    copy = WindowSum(3600)
    copy.load(rain.dump())
    assert copy.value_at(at(5)) == rain.value_at(at(5))
    z = RobustZ(window=10, min_samples=3, min_mad=1e-6)
    for m in range(8):
        z.observe(at(m), float(m % 3))
    z_copy = RobustZ(window=10, min_samples=3, min_mad=1e-6)
    z_copy.load(z.dump())
    assert z_copy.value_at(at(8)) == z.value_at(at(8))
    assert list(z_copy.history) == list(z.history)
    silence = Silence(60, active_above=1.0, active_interval_s=10)
    silence.start(at(0))
    silence.observe(at(3), 2.0)
    s_copy = Silence(60, active_above=1.0, active_interval_s=10)
    s_copy.load(silence.dump())
    assert s_copy.value_at(at(10)) == silence.value_at(at(10))
