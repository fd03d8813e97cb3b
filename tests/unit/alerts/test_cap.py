"""CAP 1.2 messages: valid against the OASIS schema, bilingual, with references."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.cap import CAP_NS, CapReference, build_cap, cap_time, msg_type_for
from alerts.ruleset import load_rules
from core.alerting import Transition
from tests.unit.alerts.cap_schema import cap_errors

EXAMPLE = Path(__file__).resolve().parents[3] / "alerts" / "rules" / "yamaguchi.yaml"
T0 = datetime(2026, 7, 1, 3, 4, 5, 678, tzinfo=UTC)
NS = {"cap": CAP_NS}


def build(
    msg_type: str = "Alert", level: int = 4, asset_id: str = "fushino-ohdoi", **kwargs: object
) -> str:
    rules = load_rules(EXAMPLE)
    asset = next(a for a in rules.assets if a.id == asset_id)
    rule = rules.rule("river-level" if asset.kind == "river_station" else "slope-under-rain")
    message = build_cap(
        settings=rules.cap,
        identifier="mamori.pref.yamaguchi.example.mamori.1.1",
        msg_type=msg_type,  # type: ignore[arg-type]
        sent=T0,
        rule=rule,
        asset=asset,
        level=level,
        transition=Transition.OPENED,
        value=3.5,
        **kwargs,  # type: ignore[arg-type]
    )
    return message.xml


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("msg_type", ["Alert", "Update", "Cancel"])
def test_every_message_validates_against_the_schema(msg_type: str, level: int) -> None:
    references = (CapReference("a@b.example", "x.1", T0),) if msg_type != "Alert" else ()
    xml = build(msg_type, level, references=references, expires=T0 + timedelta(hours=6))
    assert cap_errors(xml) == []


def test_polygon_area_validates() -> None:
    xml = build(asset_id="slope-r9-k12")
    assert cap_errors(xml) == []
    polygon = ET.fromstring(xml).findall(".//cap:polygon", NS)
    assert len(polygon) == 2
    points = (polygon[0].text or "").split()
    assert points[0] == points[-1]  # closed ring
    assert len(points) >= 4


def test_the_schema_check_catches_a_broken_message() -> None:
    xml = build().replace("<msgType>Alert</msgType>", "<msgType>Warning</msgType>")
    assert cap_errors(xml)
    xml = build().replace("+09:00</sent>", "Z</sent>")
    assert cap_errors(xml)


def test_japanese_and_english_info_blocks() -> None:
    root = ET.fromstring(build())
    infos = root.findall("cap:info", NS)
    assert [i.findtext("cap:language", namespaces=NS) for i in infos] == ["ja-JP", "en-US"]
    ja, en = infos
    assert "警戒レベル4" in (ja.findtext("cap:headline", namespaces=NS) or "")
    assert "椹野川 大土井" in (ja.findtext("cap:headline", namespaces=NS) or "")
    assert "Alert level 4" in (en.findtext("cap:headline", namespaces=NS) or "")
    for info in infos:
        assert info.findtext("cap:urgency", namespaces=NS) == "Immediate"
        assert info.findtext("cap:severity", namespaces=NS) == "Severe"
        assert info.findtext("cap:category", namespaces=NS) == "Met"
        circle = info.findtext("cap:area/cap:circle", namespaces=NS)
        assert circle == "34.20000,131.44700 2"


def test_sent_is_japan_time_without_fractions() -> None:
    assert cap_time(T0) == "2026-07-01T12:04:05+09:00"
    assert ET.fromstring(build()).findtext("cap:sent", namespaces=NS) == "2026-07-01T12:04:05+09:00"


def test_update_references_earlier_messages() -> None:
    refs = (
        CapReference("s@x.example", "x.1.1", T0),
        CapReference("s@x.example", "x.1.2", T0 + timedelta(minutes=5)),
    )
    root = ET.fromstring(build("Update", references=refs))
    assert root.findtext("cap:references", namespaces=NS) == (
        "s@x.example,x.1.1,2026-07-01T12:04:05+09:00 s@x.example,x.1.2,2026-07-01T12:09:05+09:00"
    )


def test_cancel_says_all_clear() -> None:
    root = ET.fromstring(build("Cancel"))
    for info in root.findall("cap:info", NS):
        assert info.findtext("cap:responseType", namespaces=NS) == "AllClear"
        assert info.findtext("cap:urgency", namespaces=NS) == "Past"


@pytest.mark.parametrize(
    ("transition", "earlier", "expected"),
    [
        (Transition.OPENED, False, "Alert"),
        (Transition.RAISED, True, "Update"),
        (Transition.LOWERED, True, "Update"),
        (Transition.ESCALATED, True, "Update"),
        (Transition.RESOLVED, True, "Cancel"),
        (Transition.RESOLVED, False, None),
        (Transition.ACKNOWLEDGED, True, None),
        (Transition.RENOTIFIED, True, None),
    ],
)
def test_which_transition_makes_which_message(
    transition: Transition, earlier: bool, expected: str | None
) -> None:
    assert msg_type_for(transition, earlier) == expected
