"""One photo in, findings out: tile, detect, merge, measure cracks, decide the verdict."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from core.damage import DamageType, label
from core.inspection import (
    Box,
    Finding,
    ImageVerdict,
    MeasurementConfig,
    TilingConfig,
)
from inspection_models.detection import Detection, Detector, Image
from inspection_models.measure import measure
from inspection_models.tiling import detect_tiled

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InspectionResult:
    findings: list[Finding]
    verdict: ImageVerdict
    reason: str | None
    tiles: int
    seconds: float
    mm_per_px: float | None

    @property
    def max_crack_width_mm(self) -> float | None:
        widths = [
            f.measurement.max_width_mm
            for f in self.findings
            if f.measurement is not None and f.measurement.max_width_mm is not None
        ]
        return max(widths) if widths else None


class Inspector:
    """Runs a detector over whole photos with tiling, merging and measurement."""

    def __init__(
        self,
        detector: Detector,
        tiling: TilingConfig | None = None,
        measurement: MeasurementConfig | None = None,
        batch_size: int = 8,
    ) -> None:
        self.detector = detector
        self.tiling = tiling or TilingConfig()
        self.measurement = measurement or MeasurementConfig()
        self.batch_size = batch_size

    def inspect(self, image: Image, mm_per_px: float | None = None) -> InspectionResult:
        started = time.perf_counter()
        detections, tiles = detect_tiled(image, self.detector, self.tiling, self.batch_size)
        if mm_per_px is None and self.measurement.gsd is not None:
            mm_per_px = self.measurement.gsd.resolve()
        findings = [self._finding(image, det, mm_per_px) for det in detections]
        verdict, reason = self._verdict(findings)
        seconds = time.perf_counter() - started
        _log.debug("%s tiles, %s findings in %.2f s", tiles, len(findings), seconds)
        return InspectionResult(findings, verdict, reason, tiles, seconds, mm_per_px)

    def _finding(self, image: Image, det: Detection, mm_per_px: float | None) -> Finding:
        measurement = None
        reason = None
        if det.damage == DamageType.CRACK:
            measurement = measure(image, det, self.measurement, mm_per_px)
            if measurement.exceeds_limit_mm is not None:
                reason = (
                    f"crack {measurement.max_width_mm:.2f} mm wide "
                    f"(limit {measurement.exceeds_limit_mm} mm)"
                )
        elif self._sure(det.confidence):
            reason = f"{label(det.damage)} found"
        return Finding(
            damage_type=det.damage,
            confidence=round(min(max(det.confidence, 0.0), 1.0), 4),
            box=Box(x1=det.x1, y1=det.y1, x2=det.x2, y2=det.y2),
            measurement=measurement,
            flagged_reason=reason,
        )

    def _sure(self, confidence: float) -> bool:
        floor = self.measurement.flag_min_confidence
        return floor is None or confidence >= floor

    def _verdict(self, findings: list[Finding]) -> tuple[ImageVerdict, str | None]:
        """Flag a photo for review when anything sure enough was found, saying why.

        Every crack flags, whatever its width: an inspector must see every crack, and
        the reason leads with the widest one over a limit when the scale is known.
        """
        sure = [f for f in findings if self._sure(f.confidence)]
        if not sure:
            return ImageVerdict.CLEAR, None
        over = [f for f in sure if f.measurement and f.measurement.exceeds_limit_mm is not None]
        parts: list[str] = []
        if over:
            worst = max(
                over, key=lambda f: f.measurement.max_width_mm or 0.0 if f.measurement else 0.0
            )
            assert worst.flagged_reason is not None
            parts.append(worst.flagged_reason)
        counts: dict[DamageType, int] = {}
        for f in sure:
            counts[f.damage_type] = counts.get(f.damage_type, 0) + 1
        parts.append(", ".join(f"{n} × {label(d)}" for d, n in counts.items()))
        return ImageVerdict.FLAGGED, "; ".join(parts)
