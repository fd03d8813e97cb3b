"""Request and response bodies of ``/api/v1``: pydantic v2 models with examples.

Every field a client sends is bounded (lengths, ranges, patterns), so malformed input
is a 422 at the door, never a database error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from api.security import Role
from api.taxonomy import Grade
from core.messages import Ident
from core.registry import AssetKind

DamageTypeName = str
ImageStatus = Literal["pending", "processing", "done", "flagged", "clear", "failed"]
_DAMAGE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    detail: str = Field(examples=["photo 'p-001' does not exist"])


# --------------------------------------------------------------------------- auth


class TokenRequest(_In):
    username: str = Field(min_length=1, max_length=63, examples=["tanaka"])
    password: str = Field(min_length=1, max_length=256, examples=["correct horse battery"])


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  not a secret
    expires_at: datetime
    role: Role

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "v1.eyJzdWIiOiJ0YW5ha2EifQ.c2lnbmF0dXJl",
                    "token_type": "bearer",
                    "expires_at": "2026-07-01T10:00:00Z",
                    "role": "inspector",
                }
            ]
        }
    )


class MeOut(BaseModel):
    name: str = Field(examples=["tanaka"])
    role: Role
    via: Literal["token", "cookie", "api_key"]


class UserIn(_In):
    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,62}$", examples=["tanaka"])
    display_name: str = Field(default="", max_length=100, examples=["田中 一郎"])
    role: Role
    password: str = Field(min_length=12, max_length=256)


class UserPatch(_In):
    display_name: str | None = Field(default=None, max_length=100)
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=12, max_length=256)


class UserOut(_Out):
    username: str
    display_name: str
    role: Role
    disabled: bool
    created_at: datetime


class ApiKeyIn(_In):
    name: str = Field(min_length=1, max_length=100, examples=["drone uploader, Ube depot"])
    role: Role = Field(examples=["device"])


class ApiKeyOut(_Out):
    id: int
    prefix: str
    name: str
    role: Role
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="shown once; send as `Authorization: Bearer <key>`")


# --------------------------------------------------------------------------- registry


class SiteIn(_In):
    name: str = Field(min_length=1, max_length=200, examples=["Fushino river basin"])
    name_ja: str | None = Field(default=None, max_length=200, examples=["椹野川流域"])
    prefecture: str | None = Field(default=None, max_length=50, examples=["山口県"])


class SiteOut(_Out):
    id: str = Field(examples=["yamaguchi-fushino"])
    name: str
    name_ja: str | None
    prefecture: str | None
    created_at: datetime


class AssetIn(_In):
    site_id: Ident
    kind: AssetKind
    name: str = Field(min_length=1, max_length=200, examples=["Fushino bridge"])
    name_ja: str | None = Field(default=None, max_length=200, examples=["椹野川橋"])
    lat: float | None = Field(default=None, ge=-90, le=90, examples=[34.17])
    lon: float | None = Field(default=None, ge=-180, le=180, examples=[131.47])
    thresholds: dict[str, Any] = Field(default_factory=dict)


class AssetOut(_Out):
    id: str
    site_id: str
    kind: str
    name: str
    name_ja: str | None
    lat: float | None
    lon: float | None
    thresholds: dict[str, Any]
    created_at: datetime


class DeviceIn(_In):
    site_id: Ident
    asset_id: Ident | None = None
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", examples=["water_level"])
    expected_interval_s: int | None = Field(default=None, gt=0, le=7 * 24 * 3600)


class DeviceOut(_Out):
    id: str
    site_id: str
    asset_id: str | None
    kind: str
    state: str
    state_changed_at: datetime | None
    last_seen_at: datetime | None
    last_seq: int | None
    firmware: str | None
    expected_interval_s: int | None
    created_at: datetime


# --------------------------------------------------------------------------- readings


class SeriesPointOut(_Out):
    bucket: datetime
    metric: str
    min: float
    max: float
    avg: float
    last: float
    count: int


class SeriesOut(BaseModel):
    device_id: str
    bucket_s: int
    start: datetime
    end: datetime
    points: list[SeriesPointOut]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "device_id": "wl-fushino-01",
                    "bucket_s": 600,
                    "start": "2026-07-01T00:00:00Z",
                    "end": "2026-07-01T01:00:00Z",
                    "points": [
                        {
                            "bucket": "2026-07-01T00:00:00Z",
                            "metric": "water_level_m",
                            "min": 2.1,
                            "max": 2.4,
                            "avg": 2.25,
                            "last": 2.4,
                            "count": 10,
                        }
                    ],
                }
            ]
        }
    )


class LatestOut(_Out):
    device_id: str
    metric: str
    ts: datetime
    value: float


# --------------------------------------------------------------------------- images


class ImageOut(_Out):
    id: str = Field(examples=["p-20260701-0001"])
    device_id: str | None
    asset_id: str | None
    captured_at: datetime | None
    received_at: datetime
    sha256: str
    size_bytes: int
    content_type: str
    width: int | None
    height: int | None
    status: ImageStatus
    error: str | None
    review_reason: str | None = Field(
        default=None, description="why the inspection worker flagged the photo"
    )


class DetectionOut(_Out):
    id: int
    image_id: str
    damage_type: str = Field(examples=["crack"])
    confidence: float = Field(examples=[0.87])
    x1: float
    y1: float
    x2: float
    y2: float
    length_px: float | None
    max_width_px: float | None
    length_mm: float | None = Field(examples=[412.0])
    max_width_mm: float | None = Field(examples=[0.35])
    flagged_reason: str | None = Field(examples=["crack width ≥ 0.3 mm"])
    model_name: str = Field(examples=["yolo11n-damage"])
    model_version: str = Field(examples=["2026.06"])
    created_at: datetime


class FindingOut(_Out):
    detection_id: int
    damage_type: str
    model_damage_type: str
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float
    length_mm: float | None
    max_width_mm: float | None
    flagged_reason: str | None
    model_name: str
    model_version: str
    status: Literal["pending", "confirmed", "rejected"]
    added_by_inspector: bool
    adjusted: bool
    remeasured: bool = Field(
        default=False,
        description="length and width were measured again in the box an inspector set",
    )
    reviewed_by: str | None
    severity: float


class GradeOut(_Out):
    member: str | None = Field(description="empty: the asset as a whole")
    grade: Grade
    note: str | None
    reviewer: str
    at: datetime


class ImageDetailOut(BaseModel):
    image: ImageOut
    findings: list[FindingOut]
    grades: list[GradeOut]


class QueueItemOut(BaseModel):
    image: ImageOut
    severity: float
    pending: int


# --------------------------------------------------------------------------- reviews


class BoxIn(_In):
    x1: float = Field(ge=0, le=100_000)
    y1: float = Field(ge=0, le=100_000)
    x2: float = Field(ge=0, le=100_000)
    y2: float = Field(ge=0, le=100_000)

    @model_validator(mode="after")
    def _ordered(self) -> BoxIn:
        if self.x2 - self.x1 < 1 or self.y2 - self.y1 < 1:
            raise ValueError("a box needs x2 > x1 and y2 > y1 (at least one pixel)")
        return self


ReviewAction = Literal["confirm", "reject", "reclassify", "add", "adjust", "grade"]


class ReviewIn(_In):
    """One inspector decision. Which fields are needed depends on ``action``:

    - ``confirm``, ``reject``: ``detection_id``
    - ``reclassify``: ``detection_id``, ``damage_type``
    - ``adjust``: ``detection_id``, ``box``
    - ``add``: ``damage_type``, ``box`` (a box the model missed)
    - ``grade``: ``grade``, and ``member`` (empty: the whole asset)
    """

    action: ReviewAction
    detection_id: int | None = Field(default=None, ge=1)
    damage_type: str | None = Field(default=None, pattern=_DAMAGE_PATTERN)
    box: BoxIn | None = None
    member: str | None = Field(default=None, max_length=100, examples=["主桁 Mg0101"])
    grade: Grade | None = None
    note: str | None = Field(default=None, max_length=2000)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"action": "confirm", "detection_id": 17},
                {"action": "reclassify", "detection_id": 18, "damage_type": "corrosion"},
                {
                    "action": "add",
                    "damage_type": "crack",
                    "box": {"x1": 40, "y1": 60, "x2": 180, "y2": 90},
                },
                {"action": "grade", "member": "主桁 Mg0101", "grade": "III", "note": "幅0.3mm"},
            ]
        }
    )

    @model_validator(mode="after")
    def _fields_for_action(self) -> ReviewIn:
        needs: dict[str, tuple[str, ...]] = {
            "confirm": ("detection_id",),
            "reject": ("detection_id",),
            "reclassify": ("detection_id", "damage_type"),
            "adjust": ("detection_id", "box"),
            "add": ("damage_type", "box"),
            "grade": ("grade",),
        }
        missing = [name for name in needs[self.action] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.action} needs {', '.join(missing)}")
        return self


class ReviewOut(_Out):
    id: int
    image_id: str
    detection_id: int | None
    reviewer: str
    action: ReviewAction
    damage_type: str | None
    x1: float | None
    y1: float | None
    x2: float | None
    y2: float | None
    member: str | None
    grade: Grade | None
    note: str | None
    created_at: datetime


# --------------------------------------------------------------------------- alerts


class AlertOut(_Out):
    id: int
    rule_id: str = Field(examples=["river-level"])
    asset_id: str
    level: int = Field(ge=1, le=5, description="警戒レベル 1–5")
    state: Literal["open", "acknowledged", "resolved"]
    title: str = Field(examples=["椹野川 避難判断水位 超過"])
    detail: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None


class AlertEventOut(_Out):
    id: int
    at: datetime
    actor: str
    transition: str
    from_state: str | None
    to_state: str
    from_level: int | None
    to_level: int
    note: str | None


class AlertCommentOut(_Out):
    id: int
    at: datetime
    actor: str
    note: str


class AlertDetailOut(BaseModel):
    alert: AlertOut
    events: list[AlertEventOut]
    comments: list[AlertCommentOut]


class AlertActionIn(_In):
    note: str | None = Field(default=None, max_length=2000, examples=["現地確認班を派遣"])


class CommentIn(_In):
    note: str = Field(min_length=1, max_length=2000, examples=["水位は下降傾向"])


# --------------------------------------------------------------------------- health


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unreachable"]
    time: AwareDatetime
