"""Readings from a serial port, a file or a pipe: CSV (``ts,metric,value``) or NDJSON lines.

For gateways that already collect data (a logger on RS-232, a vendor's export file). A
line that does not parse is counted and logged with its line number; it never stops the
reader.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from core.messages import Reading

_log = logging.getLogger(__name__)


def parse_line(line: str, fmt: Literal["csv", "ndjson"]) -> Reading | None:
    """One reading, or None for a blank line or a CSV header. Raises ValueError if bad."""
    text = line.strip()
    if not text:
        return None
    if fmt == "ndjson":
        try:
            return Reading.model_validate_json(text)
        except ValidationError as exc:
            raise ValueError(str(exc.errors(include_url=False)[0]["msg"])) from exc
    try:
        fields = next(csv.reader([text]))
    except csv.Error as exc:  # a stray carriage return from a noisy serial line, say
        raise ValueError(f"not a CSV line: {exc}") from exc
    if len(fields) != 3:
        raise ValueError(f"expected ts,metric,value but got {len(fields)} fields")
    if fields[0].strip().lower() == "ts":
        return None  # header
    try:
        return Reading.model_validate(
            {"ts": fields[0].strip(), "metric": fields[1].strip(), "value": fields[2]}
        )
    except ValidationError as exc:
        raise ValueError(str(exc.errors(include_url=False)[0]["msg"])) from exc


def read_stream(
    path: Path,
    fmt: Literal["csv", "ndjson"],
    *,
    follow: bool,
    stopped: Callable[[], bool],
    on_bad_line: Callable[[int, str, str], None] | None = None,
    poll_s: float = 0.2,
) -> Iterator[Reading]:
    """Yield readings as lines arrive; with ``follow`` wait for more at end of file."""
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        number = 0
        while not stopped():
            line = handle.readline()
            if not line:
                if not follow:
                    return
                time.sleep(poll_s)
                continue
            number += 1
            try:
                reading = parse_line(line, fmt)
            except ValueError as err:
                _log.warning("%s line %d: %s", path, number, err)
                if on_bad_line is not None:
                    on_bad_line(number, line, str(err))
                continue
            if reading is not None:
                yield reading
