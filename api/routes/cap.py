"""The CAP 1.2 feed: what the alert engine issued, served as stored.

The alerts service builds and stores every CAP message (``alert_cap_messages``; an
Update or Cancel references the earlier ones). The API never builds CAP itself (services
do not import each other): it lists the messages as an Atom feed, the usual way CAP is
syndicated, and serves each message's XML unchanged.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Path, Query, Request, Response

from api.deps import Db, Reader, State
from api.routes import AUTH_ERRORS, NOT_FOUND
from store import api_queries as q

router = APIRouter(prefix="/api/v1", tags=["alerts"])

_ATOM = "http://www.w3.org/2005/Atom"
CapIdentifier = Annotated[str, Path(pattern=r"^[^\s,<&]{1,200}$")]


@router.get(
    "/cap/feed.atom",
    summary="Atom feed of the newest CAP 1.2 messages (alerts, updates, cancels)",
    response_class=Response,
    responses={**AUTH_ERRORS, 200: {"content": {"application/atom+xml": {}}}},
)
def cap_feed(
    request: Request,
    _p: Reader,
    conn: Db,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    messages = q.recent_cap_messages(conn, limit=limit)
    ET.register_namespace("", _ATOM)
    feed = ET.Element(f"{{{_ATOM}}}feed")
    base = str(request.base_url).rstrip("/")
    ET.SubElement(feed, f"{{{_ATOM}}}id").text = f"{base}/api/v1/cap/feed.atom"
    ET.SubElement(feed, f"{{{_ATOM}}}title").text = "Mamori CAP alerts"
    updated = messages[0].sent if messages else state.clock()
    ET.SubElement(feed, f"{{{_ATOM}}}updated").text = updated.isoformat()
    for message in messages:
        entry = ET.SubElement(feed, f"{{{_ATOM}}}entry")
        ET.SubElement(entry, f"{{{_ATOM}}}id").text = f"urn:mamori:cap:{message.identifier}"
        ET.SubElement(
            entry, f"{{{_ATOM}}}title"
        ).text = f"{message.msg_type}: alert {message.alert_id}"
        ET.SubElement(entry, f"{{{_ATOM}}}updated").text = message.sent.isoformat()
        ET.SubElement(
            entry,
            f"{{{_ATOM}}}link",
            rel="alternate",
            type="application/cap+xml",
            href=f"{base}/api/v1/cap/messages/{quote(message.identifier, safe='')}",
        )
    body = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/atom+xml")


@router.get(
    "/cap/messages/{identifier}",
    summary="One CAP 1.2 message as the alert engine issued it",
    response_class=Response,
    responses={**AUTH_ERRORS, **NOT_FOUND, 200: {"content": {"application/cap+xml": {}}}},
)
def cap_message(identifier: CapIdentifier, _p: Reader, conn: Db) -> Response:
    message = q.get_cap_message(conn, identifier)
    return Response(message.xml.encode(), media_type="application/cap+xml")
