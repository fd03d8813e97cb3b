"""Alerts for the disaster centre: list, one with its audit trail, and the operator's
transitions (acknowledge, resolve), each appended to ``alert_events`` with the actor
and named as ``core.alerting.Transition`` names them, and notes (``alert_comments``,
which change no state). The alert engine notices operators' transitions in the table
and republishes the asset's alerts.

The CAP 1.2 feed is in ``api.routes.cap``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from api.deps import Db, OperatorUser, Reader, State
from api.models import (
    AlertActionIn,
    AlertCommentOut,
    AlertDetailOut,
    AlertEventOut,
    AlertOut,
    CommentIn,
)
from api.routes import AUTH_ERRORS, CONFLICT, NOT_FOUND
from api.security import Principal
from core.messages import Ident
from store import api_queries as q
from store.alerts import alert_events

router = APIRouter(prefix="/api/v1", tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/alerts", summary="List alerts, newest first", responses=AUTH_ERRORS)
def list_alerts(
    _p: Reader,
    conn: Db,
    state: Literal["open", "acknowledged", "resolved"] | None = None,
    asset_id: Ident | None = None,
    min_level: Annotated[int, Query(ge=1, le=5)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[AlertOut]:
    rows = q.list_alerts(
        conn, state=state, asset_id=asset_id, min_level=min_level, limit=limit, offset=offset
    )
    return [AlertOut.model_validate(r) for r in rows]


def _detail(conn: q.Conn, alert_id: int) -> AlertDetailOut:
    return AlertDetailOut(
        alert=AlertOut.model_validate(q.get_alert(conn, alert_id)),
        events=[AlertEventOut.model_validate(e) for e in alert_events(conn, alert_id)],
        comments=[AlertCommentOut.model_validate(c) for c in q.alert_comments(conn, alert_id)],
    )


@router.get(
    "/alerts/{alert_id}",
    summary="One alert with its audit trail",
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def get_alert(alert_id: AlertId, _p: Reader, conn: Db) -> AlertDetailOut:
    return _detail(conn, alert_id)


def _transition(
    conn: q.Conn,
    state: State,
    who: Principal,
    alert_id: int,
    action: str,
    note: str | None,
) -> AlertDetailOut:
    q.transition_alert(conn, alert_id, action=action, actor=who.name, note=note, at=state.clock())
    conn.commit()
    return _detail(conn, alert_id)


_WRITE_RESPONSES = {**AUTH_ERRORS, **NOT_FOUND, **CONFLICT}


@router.post(
    "/alerts/{alert_id}/acknowledge",
    summary="Acknowledge an open alert",
    responses=_WRITE_RESPONSES,
)
def acknowledge(
    alert_id: AlertId, body: AlertActionIn, who: OperatorUser, conn: Db, state: State
) -> AlertDetailOut:
    return _transition(conn, state, who, alert_id, "acknowledge", body.note)


@router.post(
    "/alerts/{alert_id}/resolve",
    summary="Resolve an open or acknowledged alert",
    responses=_WRITE_RESPONSES,
)
def resolve(
    alert_id: AlertId, body: AlertActionIn, who: OperatorUser, conn: Db, state: State
) -> AlertDetailOut:
    return _transition(conn, state, who, alert_id, "resolve", body.note)


@router.post(
    "/alerts/{alert_id}/comment",
    summary="Add an operator's note to an alert (changes no state)",
    responses=_WRITE_RESPONSES,
)
def comment(
    alert_id: AlertId, body: CommentIn, who: OperatorUser, conn: Db, state: State
) -> AlertDetailOut:
    q.add_alert_comment(conn, alert_id, actor=who.name, note=body.note, at=state.clock())
    conn.commit()
    return _detail(conn, alert_id)
