"""Signals: what a rule measures, computed incrementally from the readings of one asset.

Each signal keeps a small bounded buffer, takes readings with :meth:`observe` and says
its value at an instant with :meth:`value_at` (``None`` when it has too little data to
judge). Buffers serialise to plain lists so the engine can save them and resume after a
restart. Pure: no clock, no I/O.
"""

from __future__ import annotations

import bisect
import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

#: Consistency constant that makes the MAD estimate sigma for normal data.
MAD_TO_SIGMA = 1.4826

Sample = tuple[float, float]  # (epoch seconds, value)


class Signal(Protocol):
    def observe(self, at: datetime, value: float) -> None: ...

    def value_at(self, at: datetime) -> float | None: ...

    def dump(self) -> list[list[float]]: ...

    def load(self, samples: list[list[float]]) -> None: ...


@dataclass(slots=True)
class Negated:
    """Another signal, sign flipped: a ``below`` ladder is an ``above`` ladder over -x, so
    hysteresis, durations and the saved state work the same either way."""

    inner: Signal

    def observe(self, at: datetime, value: float) -> None:
        self.inner.observe(at, value)

    def value_at(self, at: datetime) -> float | None:
        value = self.inner.value_at(at)
        return None if value is None else -value

    def dump(self) -> list[list[float]]:
        return self.inner.dump()

    def load(self, samples: list[list[float]]) -> None:
        self.inner.load(samples)


def _t(at: datetime) -> float:
    return at.timestamp()


@dataclass(slots=True)
class _Windowed:
    window_s: float
    samples: deque[Sample] = field(default_factory=deque)

    def _add(self, at: datetime, value: float) -> None:
        t = _t(at)
        if self.samples and t < self.samples[-1][0]:
            # Out of order (a late batch): keep the buffer sorted.
            items = list(self.samples)
            bisect.insort(items, (t, value))
            self.samples = deque(items)
        else:
            self.samples.append((t, value))
        self._trim(t)

    def _trim(self, now: float) -> None:
        while self.samples and self.samples[0][0] <= now - self.window_s:
            self.samples.popleft()

    def dump(self) -> list[list[float]]:
        return [[t, v] for t, v in self.samples]

    def load(self, samples: list[list[float]]) -> None:
        self.samples = deque((float(t), float(v)) for t, v in samples)


@dataclass(slots=True)
class Latest:
    """The value itself (a water level against the standard levels)."""

    value: float | None = None

    def observe(self, at: datetime, value: float) -> None:
        self.value = value

    def value_at(self, at: datetime) -> float | None:
        return self.value

    def dump(self) -> list[list[float]]:
        return [] if self.value is None else [[0.0, self.value]]

    def load(self, samples: list[list[float]]) -> None:
        self.value = float(samples[-1][1]) if samples else None


@dataclass(slots=True)
class RatePerHour(_Windowed):
    """(latest - oldest) / span in hours, over the window, once the span is long enough."""

    min_span_s: float = 0.0

    def observe(self, at: datetime, value: float) -> None:
        self._add(at, value)

    def value_at(self, at: datetime) -> float | None:
        samples = [s for s in self.samples if s[0] > _t(at) - self.window_s]
        if len(samples) < 2:
            return None
        span = samples[-1][0] - samples[0][0]
        if span < self.min_span_s or span <= 0:
            return None
        return (samples[-1][1] - samples[0][1]) / (span / 3600)


@dataclass(slots=True)
class WindowSum(_Windowed):
    """Sum over the window ending at the instant asked (rain fallen in the last hour)."""

    def observe(self, at: datetime, value: float) -> None:
        self._add(at, value)

    def value_at(self, at: datetime) -> float | None:
        now = _t(at)
        return sum(v for t, v in self.samples if now - self.window_s < t <= now)


@dataclass(slots=True)
class RobustZ:
    """|x - median| / (1.4826 MAD) of the latest value against the values before it.

    Median and MAD ignore up to half the window being outliers, so a burst of spikes
    does not hide the next one the way a mean and standard deviation would.
    """

    window: int
    min_samples: int
    min_mad: float
    history: deque[float] = field(default_factory=deque)
    z: float | None = None

    def observe(self, at: datetime, value: float) -> None:
        self.z = robust_z(list(self.history), value, self.min_samples, self.min_mad)
        self.history.append(value)
        while len(self.history) > self.window:
            self.history.popleft()

    def value_at(self, at: datetime) -> float | None:
        return self.z

    def dump(self) -> list[list[float]]:
        head = [] if self.z is None else [[-1.0, self.z]]
        return head + [[float(i), v] for i, v in enumerate(self.history)]

    def load(self, samples: list[list[float]]) -> None:
        self.z = next((float(v) for i, v in samples if i < 0), None)
        self.history = deque(float(v) for i, v in samples if i >= 0)


def robust_z(history: list[float], value: float, min_samples: int, min_mad: float) -> float | None:
    if len(history) < min_samples:
        return None
    median = statistics.median(history)
    mad = statistics.median(abs(v - median) for v in history)
    return abs(value - median) / (MAD_TO_SIGMA * max(mad, min_mad))


@dataclass(slots=True)
class Silence:
    """Seconds since the last value, in units of the interval expected at that moment.

    ``active_above``: while the last value was at or above it, the device is in its fast
    reporting mode and ``active_interval_s`` is what to expect.
    """

    expected_interval_s: float
    grace_s: float = 0.0
    active_above: float | None = None
    active_interval_s: float | None = None
    last_t: float | None = None
    last_value: float | None = None
    started_t: float | None = None

    def observe(self, at: datetime, value: float) -> None:
        t = _t(at)
        if self.last_t is None or t >= self.last_t:
            self.last_t, self.last_value = t, value

    def start(self, at: datetime) -> None:
        """A device never heard from counts as silent from when we began watching."""
        if self.started_t is None:
            self.started_t = _t(at)

    def expected_s(self) -> float:
        if (
            self.active_above is not None
            and self.active_interval_s is not None
            and self.last_value is not None
            and self.last_value >= self.active_above
        ):
            return self.active_interval_s
        return self.expected_interval_s

    def value_at(self, at: datetime) -> float | None:
        since = self.last_t if self.last_t is not None else self.started_t
        if since is None:
            return None
        quiet = max(0.0, _t(at) - since - self.grace_s)
        return quiet / self.expected_s()

    def dump(self) -> list[list[float]]:
        out: list[list[float]] = []
        if self.started_t is not None:
            out.append([0.0, self.started_t])
        if self.last_t is not None and self.last_value is not None:
            out.append([self.last_t, self.last_value])
        return out

    def load(self, samples: list[list[float]]) -> None:
        for t, v in samples:
            if t == 0.0:
                self.started_t = float(v)
            else:
                self.last_t, self.last_value = float(t), float(v)


__all__ = [
    "MAD_TO_SIGMA",
    "Latest",
    "RatePerHour",
    "RobustZ",
    "Signal",
    "Silence",
    "WindowSum",
    "robust_z",
]
