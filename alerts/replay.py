"""Replay: run a rules file over a CSV of readings and list every transition.

For tuning rules and for tests: the same evaluator and lifecycle as the engine, with
alerts kept in memory instead of the database. Time comes from the CSV; between
readings the clock advances in ``tick_s`` steps so silence, sliding windows, durations
and escalation behave as they would in the engine.

CSV columns: ``time`` (ISO 8601 with an offset), ``asset``, ``metric``, ``value``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from alerts.cap import CapReference, build_cap, cap_identifier, msg_type_for
from alerts.evaluator import Decision, Evaluator
from alerts.lifecycle import AlertRecord, TransitionEvent, apply_level, escalate
from alerts.ruleset import RuleFile
from core.alerting import AlertState
from core.errors import ConfigError


class ReplayTransition(BaseModel):
    """One line of ``replay`` output (``--json`` prints these, one per line)."""

    model_config = ConfigDict(frozen=True)

    time: datetime
    asset: str
    rule: str
    level: int
    state: AlertState
    transition: str
    alert: int
    value: float | None = None
    cap: str | None = None


@dataclass(frozen=True, slots=True)
class CsvReading:
    time: datetime
    asset: str
    metric: str
    value: float


def read_csv(path: Path) -> list[CsvReading]:
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        return list(parse_csv(handle, str(path)))


def parse_csv(lines: Iterable[str], source: str = "<csv>") -> Iterator[CsvReading]:
    reader = csv.DictReader(lines)
    missing = {"time", "asset", "metric", "value"} - set(reader.fieldnames or [])
    if missing:
        raise ConfigError(f"{source}: missing columns {', '.join(sorted(missing))}")
    for number, row in enumerate(reader, start=2):
        try:
            at = datetime.fromisoformat(row["time"])
            value = float(row["value"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source} line {number}: {exc}") from exc
        if at.tzinfo is None:
            raise ConfigError(f"{source} line {number}: time {row['time']} has no UTC offset")
        if not math.isfinite(value):
            raise ConfigError(f"{source} line {number}: value {row['value']} is not finite")
        yield CsvReading(at, row["asset"], row["metric"], value)


class Replay:
    def __init__(
        self,
        rules: RuleFile,
        *,
        tick_s: float = 60.0,
        cap_dir: Path | None = None,
    ) -> None:
        self.rules = rules
        self.tick_s = tick_s
        self.cap_dir = cap_dir
        self.evaluator = Evaluator(rules, rules.assets)
        self.transitions: list[ReplayTransition] = []
        self._open: dict[tuple[str, str], AlertRecord] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._caps: dict[int, list[CapReference]] = {}
        self._next_alert = 1
        self._next_event = 1
        self._last_tick: datetime | None = None

    @property
    def problems(self) -> list[str]:
        return self.evaluator.problems

    def run(self, readings: Iterable[CsvReading], tail_s: float = 0.0) -> list[ReplayTransition]:
        ordered = sorted(readings, key=lambda r: r.time)
        known = {a.id for a in self.rules.assets}
        for reading in ordered:
            if reading.asset not in known:
                raise ConfigError(
                    f"asset {reading.asset} is not described under 'assets:' in the rules file"
                )
            self._ticks_until(reading.time)
            for decision in self.evaluator.observe(
                reading.asset, reading.metric, reading.time, reading.value, reading.asset
            ):
                self._apply(decision)
        if ordered:
            self._ticks_until(ordered[-1].time + timedelta(seconds=tail_s), inclusive=True)
        return self.transitions

    def _ticks_until(self, until: datetime, *, inclusive: bool = False) -> None:
        if self._last_tick is None:
            self._last_tick = until
            self._tick(until)
            return
        step = timedelta(seconds=self.tick_s)
        while self._last_tick + step < until or (inclusive and self._last_tick + step <= until):
            self._last_tick += step
            self._tick(self._last_tick)

    def _tick(self, now: datetime) -> None:
        for decision in self.evaluator.tick(now):
            self._apply(decision)
        for key, record in list(self._open.items()):
            policy = self.rules.escalation(self.rules.rule(record.rule_id))
            if policy is None:
                continue
            result = escalate(record, policy, now)
            if result is not None:
                self._record(key, record, result[0], result[1])

    def _apply(self, decision: Decision) -> None:
        if not decision.emit:
            return
        key = (decision.rule_id, decision.asset_id)
        before = self._open.get(key)
        after, event = apply_level(
            before, decision.rule_id, decision.asset_id, decision.new, decision.at, decision.value
        )
        if after is not None and event is not None:
            self._record(key, before, after, event)

    def _record(
        self,
        key: tuple[str, str],
        before: AlertRecord | None,
        after: AlertRecord,
        event: TransitionEvent,
    ) -> None:
        if before is None:
            self._ids[key] = self._next_alert
            self._next_alert += 1
        alert_id = self._ids[key]
        event_id = self._next_event
        self._next_event += 1
        if after.state is AlertState.RESOLVED:
            self._open.pop(key, None)
        else:
            self._open[key] = after
        cap = self._write_cap(alert_id, event_id, after, event)
        self.transitions.append(
            ReplayTransition(
                time=event.at,
                asset=after.asset_id,
                rule=after.rule_id,
                level=after.level,
                state=after.state,
                transition=event.transition.value,
                alert=alert_id,
                value=after.value,
                cap=cap,
            )
        )

    def _write_cap(
        self, alert_id: int, event_id: int, after: AlertRecord, event: TransitionEvent
    ) -> str | None:
        if self.cap_dir is None:
            return None
        earlier = self._caps.setdefault(alert_id, [])
        msg_type = msg_type_for(event.transition, bool(earlier))
        if msg_type is None:
            return None
        sender = self.rules.cap.sender
        identifier = cap_identifier(sender, alert_id, event_id)
        asset = next(a for a in self.rules.assets if a.id == after.asset_id)
        message = build_cap(
            settings=self.rules.cap,
            identifier=identifier,
            msg_type=msg_type,
            sent=event.at,
            rule=self.rules.rule(after.rule_id),
            asset=asset,
            level=after.level,
            transition=event.transition,
            value=after.value,
            references=tuple(earlier),
        )
        earlier.append(CapReference(sender, identifier, event.at))
        self.cap_dir.mkdir(parents=True, exist_ok=True)
        path = self.cap_dir / f"{event_id:06d}-{identifier}.xml"
        path.write_text(message.xml, encoding="utf-8")
        return path.name


def format_line(t: ReplayTransition) -> str:
    value = "" if t.value is None else f" value={t.value:g}"
    return (
        f"{t.time.isoformat()} {t.asset} {t.rule} level={t.level} {t.state.value} "
        f"({t.transition}, alert {t.alert}){value}"
    )


__all__ = ["CsvReading", "Replay", "ReplayTransition", "format_line", "parse_csv", "read_csv"]
