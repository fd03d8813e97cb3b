"""Validation against the OASIS CAP 1.2 schema (tests/unit/alerts/CAP-v1.2.xsd)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree  # type: ignore[import-untyped,unused-ignore]

XSD = Path(__file__).with_name("CAP-v1.2.xsd")


@cache
def _schema() -> object:
    return etree.XMLSchema(etree.parse(str(XSD)))


def cap_errors(xml: str | bytes) -> list[str]:
    """Every schema violation of a CAP document; empty when it is valid."""
    data = xml.encode() if isinstance(xml, str) else xml
    document = etree.fromstring(data)
    schema = _schema()
    if schema.validate(document):  # type: ignore[attr-defined]
        return []
    return [str(error) for error in schema.error_log]  # type: ignore[attr-defined]
