"""The level ladder: multi-level thresholds with hysteresis and minimum durations.

Every rule but findings is a ladder over one signal. Level ``L`` is *reached* when the
signal is at or above its rise threshold ``rise[L]`` and *held* while the signal stays at
or above its clear threshold ``rise[L] - margin[L]``. From the current level ``c``::

    wanted = max{L > c : x >= rise[L]}          if any (a rise)
           = max{L <= c : x >= clear[L]} or 0   otherwise (hold, or step down)

A rise happens once ``wanted > c`` held for ``for_s`` and goes to the lowest level wanted
during that time (the level that truly held that long); a fall happens once
``wanted < c`` held for ``clear_for_s`` and goes to the highest level wanted during that
time. So a falling river steps 4 → 3 → 2 instead of vanishing, noise around a threshold
does not flap, and level 0 means "resolve".

Pure: no clock, no I/O. Time is whatever the caller passes and never runs backwards
here (an older instant counts as the latest one seen).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict


@dataclass(frozen=True, slots=True)
class Step:
    level: int
    rise: float
    clear: float


@dataclass(frozen=True, slots=True)
class LadderSpec:
    steps: tuple[Step, ...]
    for_s: float = 0.0
    clear_for_s: float = 0.0

    def __post_init__(self) -> None:
        levels = [s.level for s in self.steps]
        if levels != sorted(set(levels)) or not levels or levels[0] < 1 or levels[-1] > 5:
            raise ValueError(f"ladder levels must be distinct, ascending, 1-5: {levels}")
        for step in self.steps:
            if step.clear > step.rise:
                raise ValueError(f"level {step.level}: clear {step.clear} above rise {step.rise}")

    @classmethod
    def build(
        cls,
        pairs: list[tuple[int, float, float]],
        *,
        for_s: float = 0.0,
        clear_for_s: float = 0.0,
    ) -> LadderSpec:
        """From (level, rise, margin) triples."""
        steps = tuple(Step(level, rise, rise - margin) for level, rise, margin in pairs)
        return cls(steps, for_s=for_s, clear_for_s=clear_for_s)

    def wanted(self, value: float, current: int) -> int:
        rising = [s.level for s in self.steps if s.level > current and value >= s.rise]
        if rising:
            return max(rising)
        holding = [s.level for s in self.steps if s.level <= current and value >= s.clear]
        return max(holding, default=0)


class LadderState(BaseModel):
    """What a ladder remembers; saved to the database so a restart resumes mid-event."""

    model_config = ConfigDict(extra="forbid")

    level: int = 0
    pending_since: AwareDatetime | None = None
    pending_bound: int | None = None
    last_at: AwareDatetime | None = None
    last_value: float | None = None


@dataclass(frozen=True, slots=True)
class LevelChange:
    at: datetime
    old: int
    new: int
    value: float | None


def step(
    spec: LadderSpec, state: LadderState, at: datetime, value: float | None
) -> LevelChange | None:
    """Feed one observation (or ``None``: the signal has nothing to say, treated as 0 for
    rises and as "no evidence" for falls, so a missing window never clears an alert)."""
    if state.last_at is not None and at < state.last_at:
        at = state.last_at
    state.last_at = at
    state.last_value = value
    current = state.level
    if value is None:
        state.pending_since = None
        state.pending_bound = None
        return None
    wanted = spec.wanted(value, current)
    if wanted == current:
        state.pending_since = None
        state.pending_bound = None
        return None
    rising = wanted > current
    if (
        state.pending_since is None
        or state.pending_bound is None
        or ((state.pending_bound > current) != rising)
    ):
        state.pending_since = at
        state.pending_bound = wanted
    else:
        # Rising: go only as high as held throughout; falling: only as low as held throughout.
        bound = min(state.pending_bound, wanted) if rising else max(state.pending_bound, wanted)
        state.pending_bound = bound
    hold = spec.for_s if rising else spec.clear_for_s
    if at - state.pending_since < timedelta(seconds=hold):
        return None
    new = state.pending_bound
    state.level = new
    state.pending_since = None
    state.pending_bound = None
    return LevelChange(at, current, new, value)


__all__ = ["LadderSpec", "LadderState", "LevelChange", "Step", "step"]
