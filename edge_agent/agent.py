"""``mamori edge run``: sensors → batches → the disk outbox → MQTT.

Three kinds of thread. Each sensor samples on its own schedule (simulated drivers) or
reads lines as they come (streams) and hands readings to the batcher. The batcher closes
a batch when it holds ``batch_max_readings`` readings or its oldest reading waited
``batch_max_latency_s``, numbers it and writes it to the outbox in one transaction. The
forwarder sends what the outbox holds, status first, and deletes each message only after
its PUBACK; while the link is down it waits, and the outbox absorbs the backlog.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.errors import TransportError
from core.messages import Reading
from core.settings import EdgeSettings, SimulatedSensor, StreamSensor
from edge_agent.drivers import (
    BridgeAccelDriver,
    BridgeStrainDriver,
    Driver,
    RainGaugeDriver,
    RiverLevelDriver,
    SlopeDriver,
)
from edge_agent.outbox import Outbox, OutboxStats
from edge_agent.publisher import DevicePublisher
from edge_agent.scenario import RainEvent, RiverResponse
from edge_agent.stream import read_stream_marked

_log = logging.getLogger(__name__)


def simulated_driver(sensor: SimulatedSensor) -> Driver:
    event, rng = RainEvent(), random.Random(sensor.seed)  # noqa: S311  simulation noise
    match sensor.model:
        case "river_level":
            river = RiverResponse(base_m=0.8, gain_m_per_mm=0.045, lag_h=1.0, recession_h=2.0)
            return RiverLevelDriver(event, river, trigger_m=1.6, rng=rng)
        case "rain_gauge":
            return RainGaugeDriver(event)
        case "slope":
            return SlopeDriver(event, rng=rng)
        case "bridge_accel":
            return BridgeAccelDriver(rng=rng)
        case "bridge_strain":
            return BridgeStrainDriver(rng=rng)


@dataclass(slots=True)
class AgentStats:
    readings: int = 0
    batches: int = 0
    sent: int = 0
    bad_lines: int = 0
    send_failures: int = 0
    errors: list[str] = field(default_factory=list)


class EdgeAgent:
    def __init__(self, settings: EdgeSettings, *, publisher: DevicePublisher | None = None) -> None:
        self.settings = settings
        self.stats = AgentStats()
        self.outbox = Outbox(settings.outbox_path, max_bytes=settings.outbox_max_bytes)
        self.publisher = publisher or DevicePublisher(
            settings.mqtt, settings.site, settings.device, firmware=settings.firmware
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pending: list[Reading] = []
        self._marks: dict[str, tuple[str, int]] = {}
        self._pending_since = 0.0
        self._threads: list[threading.Thread] = []
        #: What was still unsent when the agent stopped (None while running).
        self.final_outbox_stats: OutboxStats | None = None

    def start(self) -> None:
        for index, sensor in enumerate(self.settings.sensors):
            target = (
                self._run_simulated if isinstance(sensor, SimulatedSensor) else self._run_stream
            )
            self._spawn(f"sensor-{index}", target, sensor)
        self._spawn("batcher", self._run_batcher)
        self._spawn("forwarder", self._run_forwarder)

    def _spawn(self, name: str, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Close the open batch into the outbox, try to send it, then stop."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(drain_timeout_s)
        self._close_batch()
        self._forward_once(deadline=time.monotonic() + drain_timeout_s)
        self.publisher.stop()
        self.final_outbox_stats = self.outbox.stats()
        self.outbox.close()

    # Sensors ---------------------------------------------------------------------------

    def add_readings(
        self, readings: list[Reading], mark: tuple[str, tuple[str, int]] | None = None
    ) -> None:
        """Queue readings for the next batch; ``mark`` (source, (file identity, offset))
        says how far a stream source has been read, saved with the batch that holds them."""
        with self._lock:
            if readings and not self._pending:
                self._pending_since = time.monotonic()
            self._pending.extend(readings)
            if mark is not None:
                self._marks[mark[0]] = mark[1]
            full = len(self._pending) >= self.settings.batch_max_readings
        self.stats.readings += len(readings)
        if full:
            self._wake.set()

    def _run_simulated(self, sensor: SimulatedSensor) -> None:
        driver = simulated_driver(sensor)
        started = time.monotonic()
        while not self._stop.is_set():
            hours = (time.monotonic() - started) * sensor.speed / 3600
            self.add_readings(driver.sample(datetime.now(UTC), hours))
            self._stop.wait(driver.interval_s(hours) / sensor.speed)

    def _run_stream(self, sensor: StreamSensor) -> None:
        def bad(_number: int, _line: str, _why: str) -> None:
            self.stats.bad_lines += 1

        source = str(sensor.path)
        try:
            for reading, mark in read_stream_marked(
                sensor.path,
                sensor.format,
                follow=sensor.follow,
                stopped=self._stop.is_set,
                on_bad_line=bad,
                resume=self.outbox.stream_mark(source),
            ):
                self.add_readings(
                    [] if reading is None else [reading], (source, mark) if mark else None
                )
        except OSError as exc:
            self.stats.errors.append(f"{sensor.path}: {exc}")
            _log.error("cannot read %s: %s", sensor.path, exc)

    # Batching and forwarding -----------------------------------------------------------

    def _close_batch(self) -> None:
        with self._lock:
            readings, self._pending = self._pending, []
            marks, self._marks = self._marks, {}
        size = self.settings.batch_max_readings
        if not readings and marks:
            self.outbox.save_marks(marks)  # only lines without readings since the last batch
        for start in range(0, len(readings), size):
            chunk = readings[start : start + size]
            last = start + size >= len(readings)
            if self.outbox.put_readings(
                self.publisher.readings_topic,
                self.settings.device,
                chunk,
                marks=marks if last else None,
            ):
                self.stats.batches += 1

    def _run_batcher(self) -> None:
        latency = self.settings.batch_max_latency_s
        while not self._stop.is_set():
            with self._lock:
                count, since = len(self._pending), self._pending_since
            if count and (
                count >= self.settings.batch_max_readings or time.monotonic() - since >= latency
            ):
                self._close_batch()
                self._wake.set()
            self._stop.wait(min(0.1, latency))

    def _forward_once(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            items = self.outbox.peek(100)
            if not items:
                return
            done = []
            try:
                for item in items:
                    self.publisher.publish_to(item.topic, item.payload)
                    done.append(item.id)
            except TransportError as err:
                self.stats.send_failures += 1
                _log.warning("sending paused: %s", err)
                return
            finally:
                self.outbox.delete(done)
                self.stats.sent += len(done)

    def _run_forwarder(self) -> None:
        self.publisher.start(wait=False)
        while not self._stop.is_set():
            if self.publisher.wait_connected(1.0):
                self._forward_once(deadline=time.monotonic() + 5.0)
            self._wake.wait(0.5)
            self._wake.clear()
