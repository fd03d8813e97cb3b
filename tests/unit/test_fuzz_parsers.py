"""Property-based fuzzing of the parsers that take bytes from the field: they either
succeed or raise the project's own error, never anything else."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import PayloadError
from core.messages import DeviceStatus, PhotoAck, PhotoManifest, decode
from edge_agent.exif import read_metadata
from edge_agent.stream import parse_line

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "omu-crack-quay"
JPEG = sorted((DATASET / "h1").glob("*.jpg"))[0].read_bytes()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=400) | json_values.map(lambda v: json.dumps(v).encode()))
def test_manifests_status_and_acks_decode_or_refuse(raw: bytes) -> None:
    for model in (PhotoManifest, DeviceStatus, PhotoAck):
        with contextlib.suppress(PayloadError):
            decode(model, raw, max_bytes=10_000)


@given(
    st.fixed_dictionaries(
        {
            "size_bytes": st.integers(min_value=-5, max_value=10**9),
            "chunk_size": st.integers(min_value=-5, max_value=10**7),
            "chunks": st.integers(min_value=0, max_value=50),
        }
    )
)
def test_manifest_chunk_arithmetic_is_checked(fields: dict[str, int]) -> None:
    raw = json.dumps(
        {
            "v": 1,
            "device": "d",
            "photo_id": "p",
            "filename": "a.jpg",
            "content_type": "image/jpeg",
            "size_bytes": fields["size_bytes"],
            "sha256": "a" * 64,
            "chunk_size": fields["chunk_size"],
            "chunk_sha256": ["b" * 64] * fields["chunks"],
        }
    ).encode()
    try:
        manifest = decode(PhotoManifest, raw, max_bytes=100_000)
    except PayloadError:
        return
    assert manifest.chunk_count == -(-manifest.size_bytes // manifest.chunk_size)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_exif_reader_survives_damaged_photos(tmp_path: Path, data: st.DataObject) -> None:
    """A photo cut short or with bytes flipped is read or refused, never a crash."""
    cut = data.draw(st.integers(min_value=0, max_value=len(JPEG)))
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(JPEG) - 1), st.integers(0, 255)), max_size=8)
    )
    damaged = bytearray(JPEG[:cut])
    for index, value in flips:
        if index < len(damaged):
            damaged[index] = value
    photo = tmp_path / "damaged.jpg"
    photo.write_bytes(bytes(damaged))
    with contextlib.suppress(PayloadError):
        read_metadata(photo)


@given(st.text(max_size=200), st.sampled_from(["csv", "ndjson"]))
def test_stream_lines_parse_or_raise_value_error(line: str, fmt: str) -> None:
    with contextlib.suppress(ValueError):
        parse_line(line, fmt)  # type: ignore[arg-type]
