"""Incremental rule evaluation: rules bound to assets, fed readings, ticks and findings.

A :class:`Binding` is one rule on one asset: a signal and a ladder (or, for findings, a
latch). :class:`Evaluator` routes each reading to the bindings of its asset and metric
and returns the level changes that resulted; the engine turns those into alert
transitions, ``replay`` into printed lines. Pure: time comes from the readings and from
the ``now`` given to :meth:`Evaluator.tick`; nothing here reads a clock, a socket or a
database, so every rule is tested without I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alerts.ladder import LadderSpec, LadderState, LevelChange, step
from alerts.ruleset import (
    AnomalyRule,
    AssetRef,
    CompositeRule,
    CumulativeRule,
    FindingRule,
    RateOfRiseRule,
    RiverLevelsRule,
    Rule,
    RuleFile,
    SilenceRule,
    ThresholdRule,
    river_ladder,
)
from alerts.signals import Latest, Negated, RatePerHour, RobustZ, Signal, Silence, WindowSum
from core.registry import AssetSpec, RiverLevels

_log = logging.getLogger(__name__)

BindingKey = tuple[str, str]  # (rule id, asset id)


class BindError(ValueError):
    """A rule cannot apply to an asset (a threshold it names is missing)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A binding's level changed; ``new == 0`` means its condition cleared."""

    rule_id: str
    asset_id: str
    at: datetime
    old: int
    new: int
    value: float | None
    emit: bool


class BindingSnapshot(BaseModel):
    """What a binding remembers, as saved in ``alert_rule_state``."""

    model_config = ConfigDict(extra="forbid")

    ladder: LadderState = Field(default_factory=LadderState)
    samples: list[list[float]] = Field(default_factory=list)
    seen: dict[str, float] = Field(
        default_factory=dict, description="latest reading time per source, epoch seconds"
    )


@dataclass(slots=True)
class Binding:
    rule: Rule
    asset: AssetSpec
    ladder_spec: LadderSpec | None
    signal: Signal | None
    metric: str | None
    ladder: LadderState = field(default_factory=LadderState)
    seen: dict[str, float] = field(default_factory=dict)
    dirty: bool = False

    @property
    def key(self) -> BindingKey:
        return (self.rule.id, self.asset.id)

    def snapshot(self) -> BindingSnapshot:
        samples = self.signal.dump() if self.signal is not None else []
        return BindingSnapshot(
            ladder=self.ladder.model_copy(), samples=samples, seen=dict(self.seen)
        )

    def restore(self, snap: BindingSnapshot) -> None:
        self.ladder = snap.ladder.model_copy()
        self.seen = dict(snap.seen)
        if self.signal is not None:
            self.signal.load(snap.samples)


def resolve_threshold(asset: AssetSpec, value: float | AssetRef) -> float:
    if not isinstance(value, AssetRef):
        return float(value)
    node: object = asset.thresholds
    for part in value.asset.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise BindError(f"asset {asset.id} has no threshold {value.asset}")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise BindError(f"asset {asset.id}: threshold {value.asset} is not a number")
    return float(node)


def _bind_ladder(
    rule: ThresholdRule | RateOfRiseRule | CumulativeRule | AnomalyRule,
    asset: AssetSpec,
    for_s: float,
    clear_for_s: float,
) -> Binding:
    # A 'below' rule runs as an 'above' ladder over the negated signal.
    sign = -1.0 if rule.falling else 1.0
    pairs = [
        (
            spec.level,
            sign * resolve_threshold(asset, spec.threshold),
            spec.clear_margin if spec.clear_margin is not None else rule.clear_margin,
        )
        for spec in rule.levels
    ]
    rises = [rise for _, rise, _ in pairs]
    if rises != sorted(rises):
        raise BindError(f"asset {asset.id}: thresholds go the wrong way as the level rises")
    ladder = LadderSpec.build(pairs, for_s=for_s, clear_for_s=clear_for_s)
    signal: Signal
    if isinstance(rule, ThresholdRule):
        signal = Latest()
    elif isinstance(rule, RateOfRiseRule):
        min_span = rule.min_span_s if rule.min_span_s is not None else rule.window_s / 2
        signal = RatePerHour(rule.window_s, min_span_s=min_span)
    elif isinstance(rule, CumulativeRule):
        signal = WindowSum(rule.window_s)
    else:
        signal = RobustZ(rule.window, rule.min_samples, rule.min_mad)
    if rule.falling:
        return Binding(rule, asset, ladder, Negated(signal), rule.metric)
    return Binding(rule, asset, ladder, signal, rule.metric)


def bind(
    rules: RuleFile, rule: Rule, asset: AssetSpec, expected_interval_s: float | None
) -> Binding:
    """Make the binding of ``rule`` on ``asset``; :class:`BindError` when it cannot apply."""
    for_s, clear_for_s = rule.for_s, rules.clear_for_s(rule)
    if isinstance(rule, ThresholdRule | RateOfRiseRule | CumulativeRule | AnomalyRule):
        return _bind_ladder(rule, asset, for_s, clear_for_s)
    if isinstance(rule, RiverLevelsRule):
        raw = asset.thresholds.get("river_levels")
        if raw is None:
            raise BindError(f"asset {asset.id} has no thresholds.river_levels")
        try:
            levels = RiverLevels.model_validate(raw)
        except ValidationError as exc:
            raise BindError(f"asset {asset.id}: thresholds.river_levels: {exc}") from exc
        pairs = [(lv, rise, rule.clear_margin) for lv, rise in river_ladder(levels)]
        ladder = LadderSpec.build(pairs, for_s=for_s, clear_for_s=clear_for_s)
        return Binding(rule, asset, ladder, Latest(), rule.metric)
    if isinstance(rule, SilenceRule):
        expected = rule.expected_interval_s or expected_interval_s
        if expected is None:
            raise BindError(
                f"asset {asset.id}: no expected_interval_s on the rule or the asset's devices"
            )
        active = rule.active_when
        signal = Silence(
            expected,
            grace_s=rule.grace_s,
            active_above=resolve_threshold(asset, active.above) + active.margin if active else None,
            active_interval_s=active.interval_s if active else None,
        )
        ladder = LadderSpec.build(
            [(rule.level, rule.factor, 0.0)], for_s=for_s, clear_for_s=clear_for_s
        )
        return Binding(rule, asset, ladder, signal, rule.metric)
    if isinstance(rule, CompositeRule):
        ladder = LadderSpec.build([(rule.level, 1.0, 0.0)], for_s=for_s, clear_for_s=clear_for_s)
        return Binding(rule, asset, ladder, None, None)
    return Binding(rule, asset, None, None, None)  # FindingRule: a latch, no ladder


class Evaluator:
    """Every binding of a rule file over a set of assets."""

    def __init__(
        self,
        rules: RuleFile,
        assets: Iterable[AssetSpec],
        expected_intervals: Mapping[str, float] | None = None,
    ) -> None:
        self.rules = rules
        self.assets = {a.id: a for a in assets}
        self.bindings: dict[BindingKey, Binding] = {}
        self.problems: list[str] = []
        self._by_metric: dict[tuple[str, str], list[Binding]] = {}
        self._composites: list[Binding] = []
        self._dependants: dict[BindingKey, list[Binding]] = {}
        intervals = expected_intervals or {}
        for rule in rules.rules:
            for asset in self.assets.values():
                if not rule.applies_to.matches(asset):
                    continue
                try:
                    binding = bind(rules, rule, asset, intervals.get(asset.id))
                except BindError as err:
                    self.problems.append(f"rule {rule.id}: {err}")
                    continue
                self.bindings[binding.key] = binding
                if binding.metric is not None:
                    self._by_metric.setdefault((asset.id, binding.metric), []).append(binding)
                if isinstance(rule, CompositeRule):
                    self._composites.append(binding)
        for composite in self._composites:
            assert isinstance(composite.rule, CompositeRule)
            for cond in composite.rule.all_of:
                dep = (cond.rule, cond.asset or composite.asset.id)
                if dep not in self.bindings:
                    self.problems.append(
                        f"rule {composite.rule.id} on {composite.asset.id}: "
                        f"condition {cond.rule} has no binding on {dep[1]}"
                    )
                self._dependants.setdefault(dep, []).append(composite)
        for problem in self.problems:
            _log.warning("%s", problem)

    # Inputs ---------------------------------------------------------------------------

    def observe(
        self, asset_id: str, metric: str, at: datetime, value: float, source: str = ""
    ) -> list[Decision]:
        """One reading. A reading no newer than the last one from the same source (a
        redelivery after a crash) is ignored, so it can never repeat a transition."""
        decisions: list[Decision] = []
        seen_key = f"{source}/{metric}"
        t = at.timestamp()
        for binding in self._by_metric.get((asset_id, metric), ()):
            if binding.seen.get(seen_key, float("-inf")) >= t:
                continue
            binding.seen[seen_key] = t
            assert binding.signal is not None
            binding.signal.observe(at, value)
            binding.dirty = True
            self._step(binding, at, decisions)
        return decisions

    def tick(self, now: datetime) -> list[Decision]:
        """Time passed: windows slide, durations complete, silence grows."""
        decisions: list[Decision] = []
        for binding in self.bindings.values():
            if binding.signal is None:
                continue
            if isinstance(binding.signal, Silence) and binding.signal.started_t is None:
                binding.signal.start(now)
                binding.dirty = True
            if isinstance(binding.signal, RobustZ):
                continue  # a z-score belongs to a reading, not to an instant
            self._step(binding, now, decisions, tick=True)
        for composite in self._composites:
            self._step_composite(composite, now, decisions, tick=True)
        return decisions

    def finding(
        self,
        asset_id: str,
        damage_type: str,
        width_mm: float | None,
        confidence: float,
        at: datetime,
    ) -> list[Decision]:
        """A damage finding on one of the asset's photos latches its rule's level."""
        decisions: list[Decision] = []
        for binding in self.bindings.values():
            rule = binding.rule
            if binding.asset.id != asset_id or not isinstance(rule, FindingRule):
                continue
            if not rule.matches(damage_type, width_mm, confidence):
                continue
            old = binding.ladder.level
            binding.ladder.last_at = at
            binding.ladder.last_value = width_mm
            binding.dirty = True
            if rule.level > old:
                binding.ladder.level = rule.level
                decisions.append(
                    Decision(rule.id, asset_id, at, old, rule.level, width_mm, rule.emit)
                )
        return decisions

    def reset(self, key: BindingKey) -> None:
        """Forget a latched level (an operator resolved a finding alert)."""
        binding = self.bindings.get(key)
        if binding is not None and isinstance(binding.rule, FindingRule):
            binding.ladder.level = 0
            binding.dirty = True

    # Internals ------------------------------------------------------------------------

    def _step(
        self, binding: Binding, at: datetime, out: list[Decision], *, tick: bool = False
    ) -> None:
        assert binding.ladder_spec is not None
        assert binding.signal is not None
        value = binding.signal.value_at(at)
        if tick and _settled(binding.ladder_spec, binding.ladder, value):
            return
        before = _ladder_key(binding.ladder)
        change = step(binding.ladder_spec, binding.ladder, at, value)
        # A tick that changed nothing worth saving (only the ladder's clock) is not saved.
        binding.dirty = binding.dirty or _ladder_key(binding.ladder) != before
        if change is not None:
            out.append(self._decision(binding, change))
            for composite in self._dependants.get(binding.key, ()):
                self._step_composite(composite, at, out)

    def _step_composite(
        self, binding: Binding, at: datetime, out: list[Decision], *, tick: bool = False
    ) -> None:
        assert binding.ladder_spec is not None
        holds = self._holds(binding)
        if tick and _settled(binding.ladder_spec, binding.ladder, holds):
            return
        before = _ladder_key(binding.ladder)
        change = step(binding.ladder_spec, binding.ladder, at, holds)
        binding.dirty = binding.dirty or _ladder_key(binding.ladder) != before
        if change is not None:
            out.append(self._decision(binding, change))

    def _holds(self, composite: Binding) -> float:
        """1.0 while every condition of a composite holds, else 0.0."""
        assert isinstance(composite.rule, CompositeRule)
        for cond in composite.rule.all_of:
            dep = self.bindings.get((cond.rule, cond.asset or composite.asset.id))
            if dep is None or dep.ladder.level < cond.min_level:
                return 0.0
        return 1.0

    @staticmethod
    def _decision(binding: Binding, change: LevelChange) -> Decision:
        value = change.value
        if value is not None and isinstance(binding.signal, Negated):
            value = -value  # a 'below' rule's ladder saw the negated signal
        return Decision(
            binding.rule.id,
            binding.asset.id,
            change.at,
            change.old,
            change.new,
            value,
            binding.rule.emit,
        )


def _settled(spec: LadderSpec, state: LadderState, value: float | None) -> bool:
    """Nothing pending and the signal agrees with the level: a tick would change nothing
    but the ladder's clock. Leaving that clock alone matters: a reading that arrives late
    (a device back online, a redelivery after a restart) keeps its own time for the
    transition it causes instead of taking the time of the tick before it."""
    if state.pending_since is not None:
        return False
    return value is None or spec.wanted(value, state.level) == state.level


def _ladder_key(state: LadderState) -> tuple[int, datetime | None, int | None]:
    return (state.level, state.pending_since, state.pending_bound)


__all__ = ["Binding", "BindingKey", "BindingSnapshot", "Decision", "Evaluator", "bind"]
