"""What Mamori watches: sites, assets (the structures) and the devices on them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.messages import Ident


class AssetKind(StrEnum):
    RIVER_STATION = "river_station"
    RAIN_GAUGE = "rain_gauge"
    SLOPE = "slope"
    BRIDGE = "bridge"
    TUNNEL = "tunnel"
    QUAY_WALL = "quay_wall"
    LEVEE = "levee"
    ROAD = "road"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSpec(_Spec):
    id: Ident
    name: str = Field(min_length=1, max_length=200)
    name_ja: str | None = Field(default=None, max_length=200)
    prefecture: str | None = Field(default=None, max_length=50)


class RiverLevels(_Spec):
    """A river station's four standard water levels (基準水位), metres above gauge datum.

    Each maps to an evacuation alert level: 氾濫注意水位 → 警戒レベル2, 避難判断水位 → 3,
    氾濫危険水位 → 4; 水防団待機水位 is the flood-fighting teams' stand-by level.
    """

    standby_m: float = Field(description="水防団待機水位")
    caution_m: float = Field(description="氾濫注意水位 (Lv2)")
    evacuation_m: float = Field(description="避難判断水位 (Lv3)")
    danger_m: float = Field(description="氾濫危険水位 (Lv4)")
    bank_m: float | None = Field(default=None, description="堤防高: flooding itself (Lv5)")


class AssetSpec(_Spec):
    id: Ident
    site_id: Ident
    kind: AssetKind
    name: str = Field(min_length=1, max_length=200)
    name_ja: str | None = Field(default=None, max_length=200)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    thresholds: dict[str, Any] = Field(default_factory=dict)


class DeviceSpec(_Spec):
    id: Ident
    site_id: Ident
    asset_id: Ident | None = None
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    expected_interval_s: int | None = Field(default=None, gt=0)
