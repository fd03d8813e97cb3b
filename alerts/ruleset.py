"""Alert rules as data: the YAML file format, validated with errors that name the rule.

A rules file holds defaults, optional asset specs (used by ``replay`` and to check
references without a database), webhook targets and the rules. Every rule is a ladder
of 警戒レベル over one signal (a water level, a rise per hour, a rainfall sum, a silence
ratio, a robust z-score, a composite's truth), except findings, which are events.
``docs/alerts.md`` shows the format with examples.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.damage import DamageType
from core.errors import ConfigError
from core.registry import AssetKind, AssetSpec, RiverLevels

#: The demo fleet's rules, shipped with the package.
_PLAIN_TEXT: Final = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
YAMAGUCHI_RULES: Final = Path(__file__).with_name("rules") / "yamaguchi.yaml"

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Level = Annotated[int, Field(ge=1, le=5)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AssetRef(_Model):
    """A threshold read from the asset's ``thresholds``, e.g. ``river_levels.caution_m``."""

    asset: str = Field(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")


Threshold = float | AssetRef


class LevelSpec(_Model):
    """Rise to ``level`` when the signal is at or above ``above``; it clears below
    ``above - clear_margin`` (the rule's margin when not given here). With ``below``
    instead (a battery running down, a reservoir drawn down), rise at or below it and
    clear above ``below + clear_margin``."""

    level: Level
    above: Threshold | None = None
    below: Threshold | None = None
    clear_margin: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_bound(self) -> LevelSpec:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"level {self.level}: give exactly one of 'above' and 'below'")
        return self

    @property
    def threshold(self) -> Threshold:
        bound = self.above if self.above is not None else self.below
        assert bound is not None
        return bound

    @property
    def falling(self) -> bool:
        """True for a ``below`` level: danger grows as the value falls."""
        return self.below is not None


class CapCategory(StrEnum):
    GEO = "Geo"
    MET = "Met"
    SAFETY = "Safety"
    RESCUE = "Rescue"
    ENV = "Env"
    TRANSPORT = "Transport"
    INFRA = "Infra"
    OTHER = "Other"


class Escalation(_Model):
    """What to do when an open alert is not acknowledged within ``after_s``."""

    after_s: float = Field(gt=0)
    action: Literal["raise", "renotify"] = "renotify"
    max_level: Level = 5
    repeat: bool = Field(default=True, description="escalate again every after_s")


class AppliesTo(_Model):
    assets: list[str] = Field(default_factory=list)
    kinds: list[AssetKind] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> AppliesTo:
        if not self.assets and not self.kinds:
            raise ValueError("applies_to needs assets, kinds, or both")
        return self

    def matches(self, asset: AssetSpec) -> bool:
        return asset.id in self.assets or asset.kind in self.kinds


class _Rule(_Model):
    id: RuleId
    # Text that ends up in CAP XML and MQTT messages: no control characters (XML 1.0
    # forbids most of them, and YAML folds some, e.g. NEL, into spaces).
    title: str = Field(min_length=1, max_length=200, pattern=_PLAIN_TEXT)
    title_ja: str | None = Field(default=None, max_length=200, pattern=_PLAIN_TEXT)
    applies_to: AppliesTo
    emit: bool = Field(
        default=True, description="false: evaluate only (an input of a composite), no alerts"
    )
    for_s: float = Field(default=0.0, ge=0, description="a rise must hold this long")
    clear_for_s: float | None = Field(
        default=None,
        ge=0,
        description="a fall (step down or resolve) must hold this long; default from defaults",
    )
    clear_margin: float = Field(default=0.0, ge=0)
    escalation: Escalation | None = None
    category: CapCategory = CapCategory.INFRA
    event: str | None = Field(
        default=None, max_length=100, pattern=_PLAIN_TEXT, description="CAP event, English"
    )
    event_ja: str | None = Field(default=None, max_length=100, pattern=_PLAIN_TEXT)
    certainty: Literal["Observed", "Likely", "Possible"] = "Observed"


class _LadderRule(_Rule):
    levels: list[LevelSpec] = Field(min_length=1, max_length=5)

    @model_validator(mode="after")
    def _ordered(self) -> _LadderRule:
        numbers = [spec.level for spec in self.levels]
        if numbers != sorted(set(numbers)):
            raise ValueError(f"levels must be distinct and ascending, got {numbers}")
        if len({spec.falling for spec in self.levels}) > 1:
            raise ValueError("levels mix 'above' and 'below': a rule watches one direction")
        literal = [spec.threshold for spec in self.levels if isinstance(spec.threshold, float)]
        if len(literal) == len(self.levels) and self.falling:
            if literal != sorted(literal, reverse=True):
                raise ValueError(f"'below' thresholds must fall as the level rises, got {literal}")
        elif len(literal) == len(self.levels) and literal != sorted(literal):
            raise ValueError(f"thresholds must not fall as the level rises, got {literal}")
        return self

    @property
    def falling(self) -> bool:
        """The rule's levels are ``below`` levels."""
        return self.levels[0].falling


class ThresholdRule(_LadderRule):
    type: Literal["threshold"]
    metric: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")


class RiverLevelsRule(_Rule):
    """The four standard water levels of a river station mapped to 警戒レベル.

    氾濫注意水位 → 2, 避難判断水位 → 3, 氾濫危険水位 → 4, and the bank height (when the
    asset has one) → 5, read from the asset's ``thresholds.river_levels``.
    """

    type: Literal["river_levels"]
    metric: str = Field(default="water_level_m", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    category: CapCategory = CapCategory.MET


class RateOfRiseRule(_LadderRule):
    """Rise per hour over ``window_s``: (latest - oldest in the window) / span."""

    type: Literal["rate_of_rise"]
    metric: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    window_s: float = Field(gt=0, le=7 * 86400)
    min_span_s: float | None = Field(
        default=None, gt=0, description="least data span to judge; default half the window"
    )


class CumulativeRule(_LadderRule):
    """Sum of the metric's values over ``window_s`` (rain gauges report increments)."""

    type: Literal["cumulative"]
    metric: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    window_s: float = Field(gt=0, le=7 * 86400)

    @model_validator(mode="after")
    def _rising(self) -> CumulativeRule:
        if self.falling:
            raise ValueError("a sum of increments is watched as it grows: use 'above'")
        return self


class ActiveWhen(_Model):
    """Adaptive reporting: at or above ``above`` the device reports every ``interval_s``."""

    above: Threshold
    interval_s: float = Field(gt=0)
    margin: float = Field(
        default=0.0,
        ge=0,
        description="judge fast mode only this far above `above`: a reading that is noise "
        "around the device's own trigger must not make us expect the fast interval",
    )


class SilenceRule(_Rule):
    """No data for longer than ``factor`` expected intervals.

    The expected interval is ``expected_interval_s`` or, when unset, the shortest declared
    ``expected_interval_s`` of the asset's devices; while the last value was at or above
    ``active_when.above`` the device is in its fast mode and ``active_when.interval_s``
    applies instead, so a gauge that goes quiet in a flood is noticed in minutes while a
    calm gauge may stay quiet for its long interval.
    """

    type: Literal["silence"]
    metric: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    factor: float = Field(default=3.0, gt=1)
    grace_s: float = Field(default=30.0, ge=0)
    expected_interval_s: float | None = Field(default=None, gt=0)
    active_when: ActiveWhen | None = None
    level: Level = 2


class AnomalyRule(_LadderRule):
    """Robust z-score of each value against the previous ``window`` values:
    |x - median| / (1.4826 * MAD), with MAD floored at ``min_mad``."""

    type: Literal["anomaly"]
    metric: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    window: int = Field(default=60, ge=5, le=10_000)
    min_samples: int = Field(default=20, ge=3)
    min_mad: float = Field(default=1e-9, gt=0)
    certainty: Literal["Observed", "Likely", "Possible"] = "Likely"

    @model_validator(mode="after")
    def _samples(self) -> AnomalyRule:
        if self.min_samples > self.window:
            raise ValueError("min_samples cannot exceed window")
        if self.falling:
            raise ValueError("an anomaly score is never negative: use 'above'")
        return self


class FindingRule(_Rule):
    """A damage finding (a row of ``detections``) on an asset's photos. Damage types are
    those of :class:`core.damage.DamageType` (exposed rebar is ``spalling``:
    剥離・鉄筋露出)."""

    type: Literal["finding"]
    damage_types: list[DamageType] = Field(min_length=1)
    min_width_mm: float | None = Field(default=None, ge=0, description="strictly wider than")
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    level: Level = 3

    def matches(self, damage_type: str, width_mm: float | None, confidence: float) -> bool:
        """Whether a detection of this type, width and confidence raises this rule."""
        if damage_type not in self.damage_types or confidence < self.min_confidence:
            return False
        return self.min_width_mm is None or (width_mm is not None and width_mm > self.min_width_mm)


class Condition(_Model):
    rule: RuleId
    asset: str | None = Field(default=None, description="another asset; default the same one")
    min_level: Level = 1


class CompositeRule(_Rule):
    """``level`` while every condition holds: another rule at or above ``min_level``."""

    type: Literal["composite"]
    all_of: list[Condition] = Field(min_length=2)
    level: Level = 4
    certainty: Literal["Observed", "Likely", "Possible"] = "Likely"


Rule = Annotated[
    ThresholdRule
    | RiverLevelsRule
    | RateOfRiseRule
    | CumulativeRule
    | SilenceRule
    | AnomalyRule
    | FindingRule
    | CompositeRule,
    Field(discriminator="type"),
]


class Defaults(_Model):
    clear_for_s: float = Field(default=600.0, ge=0)
    escalation: Escalation | None = None


class WebhookTarget(_Model):
    """A receiver of signed notifications; the HMAC key comes from an environment variable."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    url: str = Field(pattern=r"^https?://")
    secret_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    min_level: Level = 1


class CapSettings(_Model):
    sender: str = Field(default="mamori@example.invalid", pattern=r"^[^\s,<&]+$")
    sender_name: str = "Mamori"
    sender_name_ja: str = "守り"
    radius_km: float = Field(default=1.0, gt=0, le=500)
    status: Literal["Actual", "Exercise", "System", "Test", "Draft"] = "Actual"
    areas: dict[str, list[tuple[float, float]]] = Field(
        default_factory=dict,
        description="asset id → polygon as (lat, lon) points; other assets get a circle",
    )


class RuleFile(_Model):
    version: Literal[1] = 1
    defaults: Defaults = Defaults()
    cap: CapSettings = CapSettings()
    assets: list[AssetSpec] = Field(default_factory=list)
    webhooks: list[WebhookTarget] = Field(default_factory=list)
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> RuleFile:
        ids = [rule.id for rule in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rule ids must be unique; repeated: {', '.join(duplicates)}")
        known = set(ids)
        for rule in self.rules:
            if isinstance(rule, CompositeRule):
                for cond in rule.all_of:
                    if cond.rule not in known:
                        raise ValueError(
                            f"rule {rule.id}: condition names unknown rule {cond.rule}"
                        )
                    if cond.rule == rule.id:
                        raise ValueError(f"rule {rule.id}: a composite cannot refer to itself")
                    target = next(r for r in self.rules if r.id == cond.rule)
                    if isinstance(target, CompositeRule):
                        raise ValueError(
                            f"rule {rule.id}: composites of composites are not allowed"
                        )
        names = [hook.name for hook in self.webhooks]
        if len(names) != len(set(names)):
            raise ValueError("webhook names must be unique")
        return self

    def clear_for_s(self, rule: _Rule) -> float:
        return rule.clear_for_s if rule.clear_for_s is not None else self.defaults.clear_for_s

    def escalation(self, rule: _Rule) -> Escalation | None:
        return rule.escalation if rule.escalation is not None else self.defaults.escalation

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def parse_rules(text: str, source: str = "<rules>") -> RuleFile:
    """Parse and validate a rules document; every problem is a :class:`ConfigError`."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{source} must hold a mapping with a 'rules' list at the top level")
    try:
        return RuleFile.model_validate(loaded)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, loaded, source)) from exc


def load_rules(path: Path) -> RuleFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read rules file {path}: {exc.strerror}") from exc
    return parse_rules(text, str(path))


def dump_rules(rules: RuleFile) -> str:
    """YAML that :func:`parse_rules` reads back to an equal :class:`RuleFile`."""
    data = rules.model_dump(mode="json", exclude_defaults=True)
    data["rules"] = [rule.model_dump(mode="json", exclude_defaults=True) for rule in rules.rules]
    for raw, rule in zip(data["rules"], rules.rules, strict=True):
        raw["type"] = rule.type  # the discriminator must survive exclude_defaults
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _explain(exc: ValidationError, loaded: dict[str, object], source: str) -> str:
    """Name each error by rule id rather than list index: ``rules[river-level].levels``."""
    rules = loaded.get("rules")
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = list(err["loc"])
        parts: list[str] = []
        i = 0
        while i < len(loc):
            part = loc[i]
            raw = (
                rules[part]
                if loc[i - 1 : i] == ["rules"]
                and isinstance(part, int)
                and isinstance(rules, list)
                and part < len(rules)
                else None
            )
            if isinstance(raw, dict) and "id" in raw:
                parts[-1] = f"rules[{raw['id']}]"
                # pydantic names the union member next (the rule's type): no news to a reader
                if i + 1 < len(loc) and loc[i + 1] == raw.get("type"):
                    i += 1
            else:
                parts.append(str(part))
            i += 1
        lines.append(f"  {'.'.join(parts) or '(root)'}: {err['msg']}")
    return f"invalid rules in {source}:\n" + "\n".join(lines)


def time_scaled(rules: RuleFile, speed: float) -> RuleFile:
    """The same rules for a replay running ``speed`` times faster than real time (the
    demo): every duration and window shrinks by ``speed``, and every rate per hour grows
    by it, so a rule judges the compressed event as it would judge the real one."""
    if speed <= 0:
        raise ValueError("speed must be positive")

    def seconds(value: float | None) -> float | None:
        return None if value is None else value / speed

    def ladder(levels: list[LevelSpec], factor: float) -> list[LevelSpec]:
        out = []
        for spec in levels:
            bound = spec.threshold * factor if isinstance(spec.threshold, float) else spec.threshold
            margin = None if spec.clear_margin is None else spec.clear_margin * factor
            key = "below" if spec.falling else "above"
            out.append(spec.model_copy(update={key: bound, "clear_margin": margin}))
        return out

    scaled: list[Rule] = []
    for rule in rules.rules:
        update: dict[str, object] = {
            "for_s": rule.for_s / speed,
            "clear_for_s": seconds(rule.clear_for_s),
        }
        if rule.escalation is not None:
            update["escalation"] = rule.escalation.model_copy(
                update={"after_s": rule.escalation.after_s / speed}
            )
        if isinstance(rule, RateOfRiseRule):
            if any(isinstance(spec.threshold, AssetRef) for spec in rule.levels):
                raise ValueError(f"rule {rule.id}: cannot scale a rate read from the asset")
            update["window_s"] = rule.window_s / speed
            update["min_span_s"] = seconds(rule.min_span_s)
            update["levels"] = ladder(rule.levels, speed)
            update["clear_margin"] = rule.clear_margin * speed
        elif isinstance(rule, CumulativeRule):
            update["window_s"] = rule.window_s / speed
        elif isinstance(rule, SilenceRule):
            update["expected_interval_s"] = seconds(rule.expected_interval_s)
            update["grace_s"] = rule.grace_s / speed
            if rule.active_when is not None:
                update["active_when"] = rule.active_when.model_copy(
                    update={"interval_s": rule.active_when.interval_s / speed}
                )
        scaled.append(rule.model_copy(update=update))
    defaults = rules.defaults.model_copy(
        update={
            "clear_for_s": rules.defaults.clear_for_s / speed,
            "escalation": None
            if rules.defaults.escalation is None
            else rules.defaults.escalation.model_copy(
                update={"after_s": rules.defaults.escalation.after_s / speed}
            ),
        }
    )
    return rules.model_copy(update={"rules": scaled, "defaults": defaults})


def river_ladder(levels: RiverLevels) -> list[tuple[int, float]]:
    """The standard water levels as (警戒レベル, rise threshold) pairs."""
    ladder = [(2, levels.caution_m), (3, levels.evacuation_m), (4, levels.danger_m)]
    if levels.bank_m is not None:
        ladder.append((5, levels.bank_m))
    return ladder


__all__ = [
    "YAMAGUCHI_RULES",
    "AnomalyRule",
    "AssetRef",
    "CompositeRule",
    "CumulativeRule",
    "FindingRule",
    "LevelSpec",
    "RateOfRiseRule",
    "RiverLevelsRule",
    "Rule",
    "RuleFile",
    "SilenceRule",
    "ThresholdRule",
    "WebhookTarget",
    "dump_rules",
    "load_rules",
    "parse_rules",
    "river_ladder",
    "time_scaled",
]
