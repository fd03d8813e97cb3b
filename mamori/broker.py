"""A broker for the demo: Mosquitto when it is installed, else the embedded amqtt broker.

Both listen on 127.0.0.1 only. amqtt speaks MQTT 3.1.1 (no shared subscriptions, no
receive maximum), so the stack is told which protocol it got.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import ServiceError

_log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    kind: Literal["mosquitto", "amqtt", "external"]
    host: str
    port: int
    protocol: Literal["5", "3.1.1"]


class MosquittoBroker:
    """A private Mosquitto on a free port, with its config and log in ``work_dir``."""

    def __init__(
        self,
        work_dir: Path,
        port: int | None = None,
        extra_config: str = "",
        *,
        auth: str | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.port = port or free_port()
        self.extra_config = extra_config
        #: Authentication lines (see mamori.broker_auth); None means anonymous on loopback.
        self.auth = auth
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("mosquitto") is not None

    def start(self) -> BrokerInfo:
        binary = shutil.which("mosquitto")
        if binary is None:
            raise ServiceError("mosquitto is not on the PATH")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "mosquitto.conf"
        persistence = self.work_dir / "mosquitto-data"
        persistence.mkdir(exist_ok=True)
        config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"{self.auth or 'allow_anonymous true'}\n"
            # Run as whoever started us: as root, Mosquitto would otherwise drop to its
            # own user, which cannot read files under a private (0700) work directory.
            f"{'user root' if os.geteuid() == 0 else ''}\n"
            "persistence true\n"
            "autosave_interval 1\n"
            f"persistence_location {persistence}/\n"
            "max_queued_messages 100000\n"
            f"{self.extra_config}\n",
            encoding="utf-8",
        )
        log = (self.work_dir / "mosquitto.log").open("ab")
        self._proc = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=log)  # noqa: S603
        if not wait_for_port("127.0.0.1", self.port, 10):
            self.stop()
            raise ServiceError(
                f"mosquitto did not listen on {self.port}; see {self.work_dir / 'mosquitto.log'}"
            )
        return BrokerInfo("mosquitto", "127.0.0.1", self.port, "5")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class EmbeddedBroker:
    """amqtt in a thread of its own, for machines without Mosquitto."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: object | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> BrokerInfo:
        self._thread = threading.Thread(target=self._run, name="amqtt", daemon=True)
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            raise ServiceError(f"embedded broker failed to start: {self._error}")
        return BrokerInfo("amqtt", "127.0.0.1", self.port, "3.1.1")

    def _run(self) -> None:
        from amqtt.broker import Broker  # only when no Mosquitto is installed

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # amqtt looks the loop up itself
        self._loop = loop
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        try:
            broker = Broker(config, loop=loop)
            loop.run_until_complete(broker.start())
            self._broker = broker
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()

    def stop(self) -> None:
        loop, broker = self._loop, self._broker
        if loop is None or broker is None:
            return
        future = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)  # type: ignore[attr-defined]
        try:
            future.result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(10)
