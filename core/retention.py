"""How long each level of readings is kept, and how often the store's upkeep runs.

Three levels: raw readings, one-minute rollups and one-hour rollups. A coarser level is
never kept for less time than a finer one (the rollups are what is left when raw rows
expire). ``None`` means kept forever. On plain PostgreSQL the maintenance job drops whole
partitions past these ages; on TimescaleDB they become retention policies.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RetentionSettings(BaseModel):
    """Days each level is kept; ``None`` keeps it forever."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_days: int = Field(default=90, ge=2, description="raw readings")
    rollup_1m_days: int | None = Field(default=730, ge=2, description="readings_1m")
    rollup_1h_days: int | None = Field(default=None, ge=2, description="readings_1h")
    compress_after_days: int = Field(
        default=7, ge=1, description="TimescaleDB only: raw chunks older than this compress"
    )

    @model_validator(mode="after")
    def _coarser_lives_longer(self) -> RetentionSettings:
        def forever(days: int | None) -> float:
            return float("inf") if days is None else float(days)

        if forever(self.rollup_1m_days) < self.raw_days:
            raise ValueError("rollup_1m_days must be at least raw_days")
        if forever(self.rollup_1h_days) < forever(self.rollup_1m_days):
            raise ValueError("rollup_1h_days must be at least rollup_1m_days (or unset)")
        return self

    @property
    def raw(self) -> timedelta:
        return timedelta(days=self.raw_days)

    @property
    def rollup_1m(self) -> timedelta | None:
        return None if self.rollup_1m_days is None else timedelta(days=self.rollup_1m_days)

    @property
    def rollup_1h(self) -> timedelta | None:
        return None if self.rollup_1h_days is None else timedelta(days=self.rollup_1h_days)


class MaintenanceSettings(BaseModel):
    """The store's upkeep: rollup refresh, partitions ahead, expiry (``mamori db maintain``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retention: RetentionSettings = RetentionSettings()
    interval_s: float = Field(
        default=60.0, ge=1.0, le=86_400.0, description="how often services run the jobs"
    )
    partitions_ahead_days: int = Field(
        default=7, ge=1, le=366, description="plain PostgreSQL: daily partitions made ahead"
    )
