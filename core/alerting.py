"""The alert contract other services read: states, transitions and the alert messages.

The alert engine publishes one retained :class:`AssetAlerts` per asset on
``Topics.alerts(site, asset)`` (``.../alerts/{site}/{asset}``) whenever one of the
asset's alerts changes, and POSTs each :class:`AlertMessage` to webhooks; the dashboard
and the API read them without importing ``alerts``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.messages import Ident

ALERT_PROTOCOL_VERSION: Final = 1

#: 警戒レベル (Japan's evacuation alert levels) as they are said in Japanese and English.
LEVEL_NAMES_JA: Final = {
    1: "警戒レベル1 (早期注意情報)",
    2: "警戒レベル2 (大雨・洪水注意報)",
    3: "警戒レベル3 (高齢者等避難)",
    4: "警戒レベル4 (避難指示)",
    5: "警戒レベル5 (緊急安全確保)",
}
LEVEL_NAMES_EN: Final = {
    1: "Alert level 1 (early warning)",
    2: "Alert level 2 (advisory)",
    3: "Alert level 3 (evacuate the elderly and those who need help)",
    4: "Alert level 4 (evacuate everyone)",
    5: "Alert level 5 (emergency: secure your safety now)",
}


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Transition(StrEnum):
    """What happened to an alert; every one is a row in ``alert_events``."""

    OPENED = "opened"
    RAISED = "raised"
    LOWERED = "lowered"
    ESCALATED = "escalated"
    RENOTIFIED = "renotified"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertMessage(BaseModel):
    """One transition of one alert: the body of a webhook, and the ``change`` of the
    retained :class:`AssetAlerts`. A resolved alert keeps its last level and says
    ``state: resolved``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = ALERT_PROTOCOL_VERSION
    alert_id: int = Field(ge=1)
    rule: str = Field(min_length=1, max_length=64)
    site: Ident
    asset: Ident
    level: int = Field(ge=1, le=5, description="警戒レベル 1-5")
    state: AlertState
    transition: Transition
    actor: str = Field(min_length=1, max_length=100)
    title: str = Field(max_length=300)
    title_ja: str | None = Field(default=None, max_length=300)
    at: AwareDatetime = Field(description="when this transition happened")
    opened_at: AwareDatetime
    value: float | None = Field(default=None, description="the signal that decided the level")
    cap_identifier: str | None = Field(default=None, max_length=200)


class OpenAlert(BaseModel):
    """One alert that is not resolved, as listed in :class:`AssetAlerts`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: int = Field(ge=1)
    rule: str = Field(min_length=1, max_length=64)
    level: int = Field(ge=1, le=5)
    state: AlertState
    title: str = Field(max_length=300)
    title_ja: str | None = Field(default=None, max_length=300)
    opened_at: AwareDatetime
    updated_at: AwareDatetime
    value: float | None = None


class AssetAlerts(BaseModel):
    """The retained state of one asset on ``{prefix}/v1/alerts/{site}/{asset}``: its
    highest open level (0: nothing open), every open alert, and the change that caused
    this message (absent when republished at start-up)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = ALERT_PROTOCOL_VERSION
    site: Ident
    asset: Ident
    level: int = Field(ge=0, le=5)
    open: list[OpenAlert]
    change: AlertMessage | None = None
    at: AwareDatetime


CAP_NAMESPACE: Final = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NAMESPACE: Final = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True, slots=True)
class CapFeedItem:
    """One CAP message as stored (``store.alerts.current_cap_messages`` gives these)."""

    identifier: str
    msg_type: str
    sent: datetime
    xml: str


def render_cap_atom_feed(
    items: Sequence[CapFeedItem],
    *,
    feed_id: str,
    title: str,
    self_url: str,
    cap_url: Callable[[str], str],
    updated: datetime,
) -> str:
    """An Atom feed of current CAP messages (the OASIS CAP feed convention): one entry per
    message, titled by its headline in the first ``info`` block, linking to the CAP XML
    (``application/cap+xml``) at ``cap_url(identifier)``. Pure: the API serves it."""
    ET.register_namespace("", ATOM_NAMESPACE)

    def node(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NAMESPACE}}}{tag}")
        element.text = text
        return element

    feed = ET.Element(f"{{{ATOM_NAMESPACE}}}feed")
    node(feed, "id", feed_id)
    node(feed, "title", title)
    node(feed, "updated", updated.isoformat())
    link = node(feed, "link")
    link.set("rel", "self")
    link.set("href", self_url)
    author = node(feed, "author")
    node(author, "name", "Mamori")
    for item in items:
        # Our own stored XML, not input from outside.
        root = ET.fromstring(item.xml)  # noqa: S314
        ns = {"cap": CAP_NAMESPACE}
        headline = root.findtext("cap:info/cap:headline", default="", namespaces=ns)
        entry = node(feed, "entry")
        node(entry, "id", f"urn:cap:{item.identifier}")
        node(entry, "title", f"{item.msg_type}: {headline}" if headline else item.msg_type)
        node(entry, "updated", item.sent.isoformat())
        alternate = node(entry, "link")
        alternate.set("rel", "alternate")
        alternate.set("type", "application/cap+xml")
        alternate.set("href", cap_url(item.identifier))
        description = root.findtext("cap:info/cap:description", default="", namespaces=ns)
        node(entry, "summary", description or headline)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(feed, encoding="unicode")


__all__ = [
    "ALERT_PROTOCOL_VERSION",
    "ATOM_NAMESPACE",
    "CAP_NAMESPACE",
    "LEVEL_NAMES_EN",
    "LEVEL_NAMES_JA",
    "AlertMessage",
    "AlertState",
    "AssetAlerts",
    "CapFeedItem",
    "OpenAlert",
    "Transition",
    "render_cap_atom_feed",
]
