"""The Atom feed of current CAP messages (rendered in core for the API to serve)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from alerts.cap import build_cap
from alerts.ruleset import load_rules
from core.alerting import ATOM_NAMESPACE, CapFeedItem, Transition, render_cap_atom_feed

EXAMPLE = Path(__file__).resolve().parents[3] / "alerts" / "rules" / "yamaguchi.yaml"
T0 = datetime(2026, 7, 1, tzinfo=UTC)


def test_feed_lists_each_message_with_its_headline_and_link() -> None:
    rules = load_rules(EXAMPLE)
    asset = rules.assets[0]
    cap = build_cap(
        settings=rules.cap,
        identifier="x.mamori.1.2",
        msg_type="Update",
        sent=T0,
        rule=rules.rule("river-level"),
        asset=asset,
        level=4,
        transition=Transition.RAISED,
        value=3.5,
    )
    feed = render_cap_atom_feed(
        [CapFeedItem(cap.identifier, cap.msg_type, cap.sent, cap.xml)],
        feed_id="urn:mamori:cap",
        title="Mamori CAP",
        self_url="https://mamori.example/cap/feed.atom",
        cap_url=lambda identifier: f"https://mamori.example/cap/{identifier}.xml",
        updated=T0,
    )
    root = ET.fromstring(feed)
    ns = {"a": ATOM_NAMESPACE}
    entries = root.findall("a:entry", ns)
    assert len(entries) == 1
    assert "警戒レベル4" in (entries[0].findtext("a:title", namespaces=ns) or "")
    link = entries[0].find("a:link", ns)
    assert link is not None
    assert link.get("href") == "https://mamori.example/cap/x.mamori.1.2.xml"
    assert link.get("type") == "application/cap+xml"
