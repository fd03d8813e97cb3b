"""Inspectors' decisions on findings and their soundness grades (Ⅰ–Ⅳ)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from api.deps import Db, InspectorUser, Reader, State
from api.models import ErrorOut, ReviewAction, ReviewIn, ReviewOut
from api.review_service import ReviewRefusedError, apply_review
from api.routes import AUTH_ERRORS, NOT_FOUND
from core.messages import Ident
from store import api_queries as q

router = APIRouter(prefix="/api/v1", tags=["reviews"])


@router.post(
    "/images/{image_id}/reviews",
    summary="Record a decision: confirm, reject, reclassify, add or adjust a box, or grade",
    status_code=status.HTTP_201_CREATED,
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND,
        422: {"model": ErrorOut, "description": "the review does not fit this photo"},
    },
)
def create_review(
    image_id: Annotated[Ident, Path()],
    body: ReviewIn,
    inspector: InspectorUser,
    conn: Db,
    state: State,
) -> ReviewOut:
    try:
        row = apply_review(
            conn, inspector, image_id, body, at_clock=state.clock(), blob_dir=state.blob_dir
        )
    except ReviewRefusedError as exc:
        raise HTTPException(422, str(exc)) from exc
    state.metrics.reviews.labels(body.action).inc()
    return ReviewOut.model_validate(row)


@router.get("/reviews", summary="Search the review log", responses=AUTH_ERRORS)
def list_reviews(
    _p: Reader,
    conn: Db,
    image_id: Ident | None = None,
    reviewer: Annotated[str | None, Query(max_length=100)] = None,
    action: ReviewAction | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ReviewOut]:
    rows = q.list_reviews(
        conn, image_id=image_id, reviewer=reviewer, action=action, limit=limit, offset=offset
    )
    return [ReviewOut.model_validate(r) for r in rows]
