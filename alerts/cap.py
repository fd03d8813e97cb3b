"""CAP 1.2 (OASIS Common Alerting Protocol) messages for alert transitions.

Opened → ``msgType Alert``; raised, lowered, escalated → ``Update`` whose
``references`` name every earlier message of the alert; resolved → ``Cancel``. Each
message carries a Japanese (``ja-JP``) and an English (``en-US``) ``info`` block and the
asset's area (its polygon when the rules file gives one, else a circle around it).
Acknowledgements and re-notifications are internal and produce no CAP message.
Times are Japan Standard Time in CAP's ``YYYY-MM-DDThh:mm:ss+09:00`` form.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final, Literal

from alerts.ruleset import CapSettings, Rule
from core.alerting import CAP_NAMESPACE, LEVEL_NAMES_EN, LEVEL_NAMES_JA, Transition
from core.registry import AssetSpec

CAP_NS: Final = CAP_NAMESPACE
JST: Final = timezone(timedelta(hours=9), "JST")

MsgType = Literal["Alert", "Update", "Cancel"]

#: 警戒レベル → (urgency, severity, responseType).
_BY_LEVEL: Final = {
    1: ("Future", "Minor", "Monitor"),
    2: ("Expected", "Moderate", "Prepare"),
    3: ("Expected", "Severe", "Evacuate"),
    4: ("Immediate", "Severe", "Evacuate"),
    5: ("Immediate", "Extreme", "Shelter"),
}

_INSTRUCTIONS_JA: Final = {
    1: "最新の気象情報に注意してください。",
    2: "避難行動を確認してください。",
    3: "高齢者等は危険な場所から避難してください。",
    4: "危険な場所から全員避難してください。",
    5: "命の危険があります。直ちに安全を確保してください。",
}
_INSTRUCTIONS_EN: Final = {
    1: "Stay informed about the weather.",
    2: "Check your evacuation route and shelter.",
    3: "The elderly and those who need help: leave dangerous places now.",
    4: "Everyone: leave dangerous places now.",
    5: "Your life is in danger. Secure your safety immediately.",
}


@dataclass(frozen=True, slots=True)
class CapReference:
    sender: str
    identifier: str
    sent: datetime


@dataclass(frozen=True, slots=True)
class CapMessage:
    identifier: str
    msg_type: MsgType
    sent: datetime
    xml: str
    references: tuple[CapReference, ...]


def msg_type_for(transition: Transition, has_earlier: bool) -> MsgType | None:
    """Which CAP message a transition produces, if any."""
    if transition in (Transition.ACKNOWLEDGED, Transition.RENOTIFIED):
        return None
    if transition is Transition.RESOLVED:
        return "Cancel" if has_earlier else None
    return "Update" if has_earlier else "Alert"


def cap_time(at: datetime) -> str:
    return at.astimezone(JST).replace(microsecond=0).isoformat()


def cap_identifier(sender: str, alert_id: int, event_id: int) -> str:
    domain = sender.rsplit("@", maxsplit=1)[-1]
    return f"{domain}.mamori.{alert_id}.{event_id}"


def build_cap(
    *,
    settings: CapSettings,
    identifier: str,
    msg_type: MsgType,
    sent: datetime,
    rule: Rule,
    asset: AssetSpec,
    level: int,
    transition: Transition,
    value: float | None,
    references: tuple[CapReference, ...] = (),
    expires: datetime | None = None,
) -> CapMessage:
    """One CAP 1.2 ``alert`` element, serialised as UTF-8 XML text."""
    ET.register_namespace("", CAP_NS)
    root = ET.Element(_q("alert"))
    _text(root, "identifier", identifier)
    _text(root, "sender", settings.sender)
    _text(root, "sent", cap_time(sent))
    _text(root, "status", settings.status)
    _text(root, "msgType", msg_type)
    _text(root, "source", f"mamori rule {rule.id}")
    _text(root, "scope", "Public")
    if references:
        _text(
            root,
            "references",
            " ".join(f"{r.sender},{r.identifier},{cap_time(r.sent)}" for r in references),
        )
    _text(root, "incidents", f"{rule.id}.{asset.id}")
    for language in ("ja-JP", "en-US"):
        _info(root, settings, language, msg_type, rule, asset, level, transition, value, expires)
    xml = ET.tostring(root, encoding="unicode", xml_declaration=False)
    return CapMessage(
        identifier,
        msg_type,
        sent,
        '<?xml version="1.0" encoding="UTF-8"?>\n' + xml,
        references,
    )


def _info(
    root: ET.Element,
    settings: CapSettings,
    language: str,
    msg_type: MsgType,
    rule: Rule,
    asset: AssetSpec,
    level: int,
    transition: Transition,
    value: float | None,
    expires: datetime | None,
) -> None:
    ja = language == "ja-JP"
    cancel = msg_type == "Cancel"
    urgency, severity, response = _BY_LEVEL[level]
    if cancel:
        urgency, severity, response = "Past", "Minor", "AllClear"
    info = ET.SubElement(root, _q("info"))
    _text(info, "language", language)
    _text(info, "category", rule.category.value)
    event = (rule.event_ja or rule.title_ja or rule.title) if ja else (rule.event or rule.title)
    _text(info, "event", event)
    _text(info, "responseType", response)
    _text(info, "urgency", urgency)
    _text(info, "severity", severity)
    _text(info, "certainty", rule.certainty)
    _text(info, "eventCode", rule.id, child="valueName", value_text="mamori-rule")
    if expires is not None:
        _text(info, "expires", cap_time(expires))
    _text(info, "senderName", settings.sender_name_ja if ja else settings.sender_name)
    asset_name = (asset.name_ja or asset.name) if ja else asset.name
    level_name = LEVEL_NAMES_JA[level] if ja else LEVEL_NAMES_EN[level]
    title = (rule.title_ja or rule.title) if ja else rule.title
    if cancel:
        headline = f"{asset_name}: {title} 解除" if ja else f"{asset_name}: {title} cancelled"
    else:
        headline = f"{asset_name}: {level_name}"
    _text(info, "headline", headline)
    measured = "" if value is None else (f" 観測値 {value:g}" if ja else f" Measured {value:g}.")
    description = (
        f"{title}。{transition_ja(transition)}。{measured}"
        if ja
        else f"{title}: {transition.value}.{measured}"
    )
    _text(info, "description", description.strip())
    if not cancel:
        _text(info, "instruction", _INSTRUCTIONS_JA[level] if ja else _INSTRUCTIONS_EN[level])
    parameter = ET.SubElement(info, _q("parameter"))
    _text(parameter, "valueName", "警戒レベル" if ja else "AlertLevel")
    _text(parameter, "value", "0" if cancel else str(level))
    area = ET.SubElement(info, _q("area"))
    _text(area, "areaDesc", asset_name)
    polygon = settings.areas.get(asset.id)
    if polygon:
        ring = [*polygon, polygon[0]] if polygon[0] != polygon[-1] else polygon
        _text(area, "polygon", " ".join(f"{lat:.5f},{lon:.5f}" for lat, lon in ring))
    elif asset.lat is not None and asset.lon is not None:
        _text(area, "circle", f"{asset.lat:.5f},{asset.lon:.5f} {settings.radius_km:g}")


def transition_ja(transition: Transition) -> str:
    return {
        Transition.OPENED: "発表",
        Transition.RAISED: "引き上げ",
        Transition.LOWERED: "引き下げ",
        Transition.ESCALATED: "未確認のため引き上げ",
        Transition.RENOTIFIED: "再通知",
        Transition.ACKNOWLEDGED: "確認済み",
        Transition.RESOLVED: "解除",
    }[transition]


def _q(tag: str) -> str:
    return f"{{{CAP_NS}}}{tag}"


def _text(
    parent: ET.Element,
    tag: str,
    text: str,
    *,
    child: str | None = None,
    value_text: str | None = None,
) -> ET.Element:
    element = ET.SubElement(parent, _q(tag))
    if child is None:
        element.text = text
        return element
    # CAP's eventCode and parameter are (valueName, value) pairs.
    _text(element, child, value_text or "")
    _text(element, "value", text)
    return element


__all__ = [
    "CAP_NS",
    "JST",
    "CapMessage",
    "CapReference",
    "build_cap",
    "cap_identifier",
    "cap_time",
    "msg_type_for",
]
