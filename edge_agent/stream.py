"""Readings from a serial port, a file or a pipe: CSV (``ts,metric,value``) or NDJSON lines.

For gateways that already collect data (a logger on RS-232, a vendor's export file). A
line that does not parse is counted and logged with its line number; it never stops the
reader.
"""

from __future__ import annotations

import csv
import logging
import stat
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


#: Where a reader is in a regular file: the file's identity (device:inode) and the byte
#: offset just past the last line read. Pipes and serial ports have none.
Mark = tuple[str, int]


def file_identity(path: Path) -> str | None:
    """``device:inode`` of a regular file (a rotated or replaced log gets a new one);
    None for a pipe, a serial port or anything else that cannot be re-read."""
    try:
        info = path.stat()
    except OSError:
        return None
    return f"{info.st_dev}:{info.st_ino}" if stat.S_ISREG(info.st_mode) else None


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
    for reading, _ in read_stream_marked(
        path, fmt, follow=follow, stopped=stopped, on_bad_line=on_bad_line, poll_s=poll_s
    ):
        if reading is not None:
            yield reading


def read_stream_marked(
    path: Path,
    fmt: Literal["csv", "ndjson"],
    *,
    follow: bool,
    stopped: Callable[[], bool],
    on_bad_line: Callable[[int, str, str], None] | None = None,
    poll_s: float = 0.2,
    resume: Mark | None = None,
) -> Iterator[tuple[Reading | None, Mark | None]]:
    """Like :func:`read_stream`, with the mark after each line, and starting from
    ``resume`` when it names this same file (not rotated, not truncated below it). A
    line with no reading (blank, a header, a bad one) yields ``None`` with its mark, so
    it is not read again either. Lines are split on LF only; a line's bytes are decoded
    as UTF-8 with replacement."""
    identity = file_identity(path)
    with path.open("rb") as handle:
        offset = 0
        same_file = resume is not None and identity is not None and resume[0] == identity
        if resume is not None and same_file and path.stat().st_size >= resume[1]:
            handle.seek(resume[1])  # not rotated, not truncated below where we were
            offset = resume[1]
        number = 0
        partial = b""
        while not stopped():
            chunk = handle.readline()
            if not chunk:
                if not follow:
                    break
                time.sleep(poll_s)
                continue
            if not chunk.endswith(b"\n") and follow:
                partial += chunk  # a line still being written: wait for its end
                continue
            raw, partial = partial + chunk, b""
            offset += len(raw)
            number += 1
            line = raw.decode("utf-8", errors="replace")
            reading: Reading | None = None
            try:
                reading = parse_line(line, fmt)
            except ValueError as err:
                _log.warning("%s line %d: %s", path, number, err)
                if on_bad_line is not None:
                    on_bad_line(number, line, str(err))
            yield reading, (identity, offset) if identity is not None else None
