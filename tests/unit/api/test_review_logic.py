"""Pure parts of the API: folding reviews over detections, tokens, image headers, the
page's colours against WCAG AA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.blobs import ImageRejectedError, probe
from api.findings import fold, grades, queue_severity
from api.review.theme import PALETTE, TEXT_PAIRS, contrast
from api.security import Role, TokenError, TokenSigner, new_api_key, split_api_key
from store.api_queries import DetectionRow, ReviewRow

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def _det(
    det_id: int, damage: str = "crack", conf: float = 0.8, width: float | None = None
) -> DetectionRow:
    return DetectionRow(
        det_id, "p1", damage, conf, 0, 0, 10, 10, None, None, None, width, "why", "m", "1", T0
    )


def _rev(rev_id: int, action: str, det_id: int | None, **extra: object) -> ReviewRow:
    fields: dict[str, object] = {
        "damage_type": None,
        "x1": None,
        "y1": None,
        "x2": None,
        "y2": None,
        "member": None,
        "grade": None,
        "note": None,
    }
    fields.update(extra)
    return ReviewRow(
        rev_id,
        "p1",
        det_id,
        "tanaka",
        action,
        created_at=T0 + timedelta(minutes=rev_id),
        **fields,  # type: ignore[arg-type]
    )


def test_a_moved_box_shows_the_workers_measurement_once_it_exists() -> None:
    box = {"x1": 100.0, "y1": 0.0, "x2": 140.0, "y2": 200.0}
    moved = _rev(1, "adjust", 1, **box)
    (before,) = fold([_det(1, width=0.5)], [moved])
    assert (before.max_width_mm, before.adjusted, before.remeasured) == (0.5, True, False)
    measured = _rev(
        1,
        "adjust",
        1,
        **box,
        measured_length_px=198.0,
        measured_max_width_px=8.0,
        measured_length_mm=49.5,
        measured_max_width_mm=2.0,
    )
    (after,) = fold([_det(1, width=0.5)], [measured])
    assert (after.max_width_mm, after.length_mm, after.max_width_px) == (2.0, 49.5, 8.0)
    assert after.remeasured
    assert (after.x1, after.x2) == (100.0, 140.0)


def test_latest_decision_wins_and_pending_come_first() -> None:
    detections = [_det(1), _det(2, "corrosion"), _det(3, "spalling")]
    reviews = [
        _rev(1, "reject", 1),
        _rev(2, "confirm", 1),
        _rev(3, "reclassify", 2, damage_type="efflorescence"),
        _rev(4, "reject", 2),
        _rev(5, "adjust", 1, x1=1, y1=2, x2=3, y2=4),
    ]
    findings = {f.detection_id: f for f in fold(detections, reviews)}
    assert findings[1].status == "confirmed"
    assert (findings[1].x1, findings[1].y2, findings[1].adjusted) == (1, 4, True)
    assert findings[2].status == "rejected"
    assert findings[2].damage_type == "efflorescence"
    assert findings[3].status == "pending"
    assert next(f.detection_id for f in fold(detections, reviews)) == 3


def test_severity_ranks_rebar_over_wide_crack_over_hairline() -> None:
    spall = fold([_det(1, "spalling", 0.8)], [])
    wide = fold([_det(2, "crack", 0.9, width=0.35)], [])
    hair = fold([_det(3, "crack", 0.9, width=0.05)], [])
    assert queue_severity(spall) > queue_severity(wide) > queue_severity(hair)
    assert queue_severity(fold([_det(4)], [_rev(1, "confirm", 4)])) == 0.0


def test_latest_grade_per_member_asset_first() -> None:
    reviews = [
        _rev(1, "grade", None, grade="II", member="主桁"),
        _rev(2, "grade", None, grade="III", member="主桁"),
        _rev(3, "grade", None, grade="II"),
    ]
    assert [(g.member, g.grade) for g in grades(reviews)] == [(None, "II"), ("主桁", "III")]


@given(st.lists(st.sampled_from(["confirm", "reject", "reclassify", "adjust"]), max_size=8))
def test_any_review_history_ends_in_the_last_decision(actions: list[str]) -> None:
    reviews = [
        _rev(i + 1, a, 1, damage_type="corrosion", x1=0, y1=0, x2=5, y2=5)
        for i, a in enumerate(actions)
    ]
    (finding,) = fold([_det(1)], reviews)
    expected = (
        "pending" if not actions else ("rejected" if actions[-1] == "reject" else "confirmed")
    )
    assert finding.status == expected


def test_tokens_expire_and_resist_tampering() -> None:
    now = [T0]
    signer = TokenSigner("s" * 40, timedelta(minutes=10), lambda: now[0])
    token, claims = signer.issue("tanaka", Role.INSPECTOR)
    assert signer.verify(token).subject == "tanaka"
    assert claims.expires_at == T0 + timedelta(minutes=10)
    with pytest.raises(TokenError):
        TokenSigner("t" * 40, timedelta(minutes=10), lambda: now[0]).verify(token)
    now[0] = T0 + timedelta(minutes=10)
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token)
    assert signer.csrf_for(token) != signer.csrf_for(token + "x")


def test_api_keys_split_into_prefix_and_digest() -> None:
    fresh = new_api_key()
    assert split_api_key(fresh.key) == (fresh.prefix, fresh.secret_sha256)
    for bad in ("", "mk_", "mk_short_x", "xx_abcdefgh_secret", "mk_abcdefgh"):
        assert split_api_key(bad) is None


def test_probe_reads_jpeg_and_png_headers_without_decoding() -> None:
    pixels = np.full((30, 50, 3), 128, np.uint8)
    for ext, mime in ((".jpg", "image/jpeg"), (".png", "image/png")):
        ok, data = cv2.imencode(ext, pixels)
        assert ok
        header = probe(bytes(data.tobytes()))
        assert (header.content_type, header.width, header.height) == (mime, 50, 30)
    with pytest.raises(ImageRejectedError):
        probe(b"\xff\xd8\xff\xd9")


@pytest.mark.parametrize(("fg", "bg", "minimum"), TEXT_PAIRS)
def test_page_colours_meet_wcag_aa(fg: str, bg: str, minimum: float) -> None:
    assert contrast(PALETTE[fg], PALETTE[bg]) >= minimum, (fg, bg)


def test_contrast_arithmetic_matches_wcag_reference_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
