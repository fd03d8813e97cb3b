"""Topic builders and the topic parser: the only place topic strings are spelled out.

Layout (``{prefix}`` is ``mamori`` in production, a unique value per test)::

    {prefix}/v1/{site}/{device}/readings                         ReadingBatch, QoS 1
    {prefix}/v1/{site}/{device}/status                           DeviceStatus, QoS 1, retained
    {prefix}/v1/{site}/{device}/photos/{photo_id}/manifest       PhotoManifest, QoS 1
    {prefix}/v1/{site}/{device}/photos/{photo_id}/chunks/{n}     raw bytes, QoS 1
    {prefix}/v1/{site}/{device}/photos/{photo_id}/ack            ingest → device: chunks held
    {prefix}/v1/alerts/{site}/{asset}                            alerts (published by Mamori)

Subscribers use shared subscriptions (``$share/{group}/...``) so that more replicas share
the load instead of each receiving everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from core.errors import TopicError

VERSION_SEGMENT: Final = "v1"
_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


class TopicKind(StrEnum):
    READINGS = "readings"
    STATUS = "status"
    PHOTO_MANIFEST = "photo_manifest"
    PHOTO_CHUNK = "photo_chunk"
    PHOTO_ACK = "photo_ack"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    kind: TopicKind
    site: str
    device: str
    photo_id: str | None = None
    chunk_index: int | None = None


def _check(name: str, value: str) -> str:
    if not _SEGMENT.match(value):
        raise TopicError(f"{name} {value!r} must match {_SEGMENT.pattern}")
    return value


@dataclass(frozen=True, slots=True)
class Topics:
    """Builds and parses topics under one prefix."""

    prefix: str = "mamori"

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise TopicError(f"topic prefix {self.prefix!r} must match {_PREFIX.pattern}")

    @property
    def root(self) -> str:
        return f"{self.prefix}/{VERSION_SEGMENT}"

    def device_root(self, site: str, device: str) -> str:
        return f"{self.root}/{_check('site', site)}/{_check('device', device)}"

    def readings(self, site: str, device: str) -> str:
        return f"{self.device_root(site, device)}/readings"

    def status(self, site: str, device: str) -> str:
        return f"{self.device_root(site, device)}/status"

    def photo_manifest(self, site: str, device: str, photo_id: str) -> str:
        return f"{self.device_root(site, device)}/photos/{_check('photo', photo_id)}/manifest"

    def photo_chunk(self, site: str, device: str, photo_id: str, index: int) -> str:
        if index < 0:
            raise TopicError(f"chunk index {index} is negative")
        return f"{self.device_root(site, device)}/photos/{_check('photo', photo_id)}/chunks/{index}"

    def photo_ack(self, site: str, device: str, photo_id: str) -> str:
        return f"{self.device_root(site, device)}/photos/{_check('photo', photo_id)}/ack"

    def alerts(self, site: str, asset: str) -> str:
        return f"{self.root}/alerts/{_check('site', site)}/{_check('asset', asset)}"

    # Subscription filters -------------------------------------------------------------

    def shared(self, group: str, topic_filter: str) -> str:
        return f"$share/{_check('share group', group)}/{topic_filter}"

    def all_readings(self) -> str:
        return f"{self.root}/+/+/readings"

    def all_status(self) -> str:
        return f"{self.root}/+/+/status"

    def all_photo_manifests(self) -> str:
        return f"{self.root}/+/+/photos/+/manifest"

    def all_photo_chunks(self) -> str:
        # Not photos/#: that would also match the acks ingest itself sends back.
        return f"{self.root}/+/+/photos/+/chunks/+"

    def all_alerts(self) -> str:
        return f"{self.root}/alerts/#"

    # Parsing --------------------------------------------------------------------------

    def parse(self, topic: str) -> ParsedTopic:
        """Split a device topic into its parts; anything else raises :class:`TopicError`."""
        parts = topic.split("/")
        if len(parts) < 5 or parts[0] != self.prefix or parts[1] != VERSION_SEGMENT:
            raise TopicError(f"{topic!r} is not under {self.root}/")
        site, device = _check("site", parts[2]), _check("device", parts[3])
        rest = parts[4:]
        if rest == ["readings"]:
            return ParsedTopic(TopicKind.READINGS, site, device)
        if rest == ["status"]:
            return ParsedTopic(TopicKind.STATUS, site, device)
        if len(rest) >= 3 and rest[0] == "photos":
            photo_id = _check("photo", rest[1])
            if rest[2:] == ["manifest"]:
                return ParsedTopic(TopicKind.PHOTO_MANIFEST, site, device, photo_id)
            if rest[2:] == ["ack"]:
                return ParsedTopic(TopicKind.PHOTO_ACK, site, device, photo_id)
            if len(rest) == 4 and rest[2] == "chunks" and rest[3].isdigit() and len(rest[3]) < 7:
                return ParsedTopic(TopicKind.PHOTO_CHUNK, site, device, photo_id, int(rest[3]))
        raise TopicError(f"{topic!r} has an unknown layout after the device id")
