"""Photo metadata from EXIF (and the DJI XMP relative altitude), for the photo manifest.

Crack width in millimetres needs the ground sample distance, which needs the camera's
focal length and sensor width and the distance to the surface. EXIF gives the focal
length and, through the focal-plane resolution, the sensor width; the altitude above
ground comes from DJI's XMP ``RelativeAltitude`` when present, else from the operator
(``--altitude-m``): EXIF's GPS altitude is above sea level and useless for GSD.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from core.errors import DeadLetterReason, PayloadError
from core.messages import CameraInfo, GeoPoint

_JST = timezone(timedelta(hours=9))
_RELATIVE_ALT = re.compile(rb'RelativeAltitude="([+-]?\d+(?:\.\d+)?)"')
_INCH_MM = {2: 25.4, 3: 10.0, 4: 1.0}  # FocalPlaneResolutionUnit: inch, cm, mm

_TAG_MAKE, _TAG_MODEL, _TAG_DATETIME = 271, 272, 306
_IFD_EXIF, _IFD_GPS = 0x8769, 0x8825
_EXIF_DATETIME_ORIGINAL, _EXIF_OFFSET_ORIGINAL = 36867, 36881
_EXIF_FOCAL_LENGTH, _EXIF_WIDTH, _EXIF_HEIGHT = 37386, 40962, 40963
_EXIF_FP_XRES, _EXIF_FP_UNIT = 41486, 41488


@dataclass(frozen=True, slots=True)
class PhotoMetadata:
    captured_at: datetime | None
    location: GeoPoint | None
    camera: CameraInfo
    content_type: str


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "").strip()
    return cleaned[:64] or None


def _float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]  # EXIF rationals convert
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _degrees(dms: object, ref: object) -> float | None:
    if not isinstance(dms, tuple) or len(dms) != 3:
        return None
    parts = [_float(p) for p in dms]
    if any(p is None for p in parts):
        return None
    d, m, s = (p or 0.0 for p in parts)
    value = d + m / 60 + s / 3600
    return -value if ref in ("S", "W") else value


def _captured_at(
    exif_ifd: dict[int, object], base: dict[int, object], default_tz: timezone
) -> datetime | None:
    raw = exif_ifd.get(_EXIF_DATETIME_ORIGINAL) or base.get(_TAG_DATETIME)
    if not isinstance(raw, str):
        return None
    try:
        naive = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = exif_ifd.get(_EXIF_OFFSET_ORIGINAL)
    if isinstance(offset, str) and re.fullmatch(r"[+-]\d{2}:\d{2}", offset.strip("\x00 ")):
        return datetime.fromisoformat(naive.isoformat() + offset.strip("\x00 "))
    return naive.replace(tzinfo=default_tz)


def read_metadata(
    path: Path, *, altitude_m: float | None = None, default_tz: timezone = _JST
) -> PhotoMetadata:
    """Read what the manifest needs. A file that is not an image is a :class:`PayloadError`."""
    try:
        with Image.open(path) as image:
            content_type = "image/png" if image.format == "PNG" else "image/jpeg"
            if image.format not in ("JPEG", "PNG", "MPO"):
                raise PayloadError(
                    DeadLetterReason.INVALID, f"{path.name}: {image.format} is not JPEG or PNG"
                )
            width, height = image.size
            exif = image.getexif()
            base = dict(exif.items())
            exif_ifd = dict(exif.get_ifd(_IFD_EXIF).items())
            gps = dict(exif.get_ifd(_IFD_GPS).items())
    except (UnidentifiedImageError, OSError) as exc:
        raise PayloadError(
            DeadLetterReason.UNDECODABLE, f"{path.name} is not a readable image: {exc}"
        ) from exc

    sensor_width = None
    fp_res = _float(exif_ifd.get(_EXIF_FP_XRES))
    unit = exif_ifd.get(_EXIF_FP_UNIT)
    pixel_width = exif_ifd.get(_EXIF_WIDTH)
    if (
        fp_res
        and isinstance(unit, int)
        and unit in _INCH_MM
        and isinstance(pixel_width, int)
        and pixel_width > 0
    ):
        sensor_width = round(pixel_width / fp_res * _INCH_MM[unit], 3)
    focal = _float(exif_ifd.get(_EXIF_FOCAL_LENGTH))
    camera = CameraInfo(
        make=_text(base.get(_TAG_MAKE)),
        model=_text(base.get(_TAG_MODEL)),
        focal_length_mm=focal if focal and 0 < focal <= 2000 else None,
        sensor_width_mm=sensor_width if sensor_width and 0 < sensor_width <= 100 else None,
        image_width_px=width,
        image_height_px=height,
    )
    if altitude_m is None:
        match = _RELATIVE_ALT.search(path.read_bytes()[: 512 * 1024])
        altitude_m = float(match.group(1)) if match else None
    lat = _degrees(gps.get(2), gps.get(1))
    lon = _degrees(gps.get(4), gps.get(3))
    location = None
    if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
        location = GeoPoint(lat=round(lat, 7), lon=round(lon, 7), alt_m=altitude_m)
    return PhotoMetadata(_captured_at(exif_ifd, base, default_tz), location, camera, content_type)
