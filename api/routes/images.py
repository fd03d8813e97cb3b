"""Photos: list and filter, one photo with its findings, the original bytes, an overlay
with the findings drawn, uploads from devices, the review queue, and detections."""

from __future__ import annotations

import pathlib
import secrets
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response, status
from pydantic import AwareDatetime
from starlette.concurrency import run_in_threadpool

from api.blobs import (
    BlobError,
    ImageRejectedError,
    decode_checked,
    draw_overlay,
    read_blob,
    write_blob,
)
from api.deps import AppState, Db, Reader, State, Uploader
from api.models import (
    DetectionOut,
    ErrorOut,
    FindingOut,
    GradeOut,
    ImageDetailOut,
    ImageOut,
    ImageStatus,
    QueueItemOut,
)
from api.review_service import image_detail, review_queue
from api.routes import AUTH_ERRORS, NOT_FOUND
from core.messages import Ident
from store import api_queries as q

router = APIRouter(prefix="/api/v1", tags=["images"])

ImageId = Annotated[Ident, Path(description="photo id")]
Status = ImageStatus
_IMAGE_CONTENT: dict[str, dict[str, object]] = {"image/jpeg": {}, "image/png": {}}


def _detail_out(conn: q.Conn, image_id: str, blob_dir: pathlib.Path) -> ImageDetailOut:
    detail = image_detail(conn, image_id, blob_dir)
    return ImageDetailOut(
        image=ImageOut.model_validate(detail.image),
        findings=[FindingOut.model_validate(f, from_attributes=True) for f in detail.findings],
        grades=[GradeOut.model_validate(g, from_attributes=True) for g in detail.grades],
    )


@router.get(
    "/images", summary="List photos, filtered by asset, device and status", responses=AUTH_ERRORS
)
def list_images(
    _p: Reader,
    conn: Db,
    asset_id: Ident | None = None,
    device_id: Ident | None = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ImageOut]:
    rows = q.list_images(
        conn, asset_id=asset_id, status=status, device_id=device_id, limit=limit, offset=offset
    )
    return [ImageOut.model_validate(r) for r in rows]


@router.get(
    "/images/review-queue",
    summary="Photos with findings no inspector has decided on, most severe first",
    responses=AUTH_ERRORS,
)
def queue(
    _p: Reader,
    conn: Db,
    asset_id: Ident | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[QueueItemOut]:
    return [
        QueueItemOut(
            image=ImageOut.model_validate(item.image),
            severity=item.severity,
            pending=item.pending,
        )
        for item in review_queue(conn, asset_id=asset_id, limit=limit)
    ]


@router.get(
    "/images/{image_id}",
    summary="One photo with its findings (detections after review) and grades",
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def get_image(image_id: ImageId, _p: Reader, conn: Db, state: State) -> ImageDetailOut:
    return _detail_out(conn, image_id, state.blob_dir)


@router.get(
    "/images/{image_id}/original",
    summary="The photo as uploaded",
    response_class=Response,
    responses={**AUTH_ERRORS, **NOT_FOUND, 200: {"content": _IMAGE_CONTENT}},
)
def original(image_id: ImageId, _p: Reader, conn: Db, state: State) -> Response:
    image = q.get_image(conn, image_id)
    try:
        data = read_blob(state.blob_dir, image.blob_key)
    except BlobError as exc:
        raise HTTPException(404, "the photo's file is missing") from exc
    return Response(
        data, media_type=image.content_type, headers={"Cache-Control": "private, max-age=3600"}
    )


@router.get(
    "/images/{image_id}/overlay",
    summary="The photo as PNG with every finding's box, class, confidence and width drawn",
    response_class=Response,
    responses={**AUTH_ERRORS, **NOT_FOUND, 200: {"content": {"image/png": {}}}},
)
def overlay(
    image_id: ImageId,
    _p: Reader,
    conn: Db,
    state: State,
    include_rejected: bool = False,
) -> Response:
    detail = image_detail(conn, image_id)
    try:
        data = read_blob(state.blob_dir, detail.image.blob_key)
        png = draw_overlay(data, detail.findings, include_rejected=include_rejected)
    except (BlobError, ImageRejectedError) as exc:
        raise HTTPException(404, "the photo's file is missing or unreadable") from exc
    return Response(png, media_type="image/png")


@router.post(
    "/images",
    summary="Upload a photo (raw JPEG or PNG body); queued for the inspection worker",
    status_code=status.HTTP_201_CREATED,
    responses={
        **AUTH_ERRORS,
        409: {"model": ErrorOut, "description": "unknown asset or device"},
        413: {"model": ErrorOut, "description": "larger than max_upload_bytes"},
        415: {"model": ErrorOut, "description": "not a JPEG or PNG, or a decompression bomb"},
    },
    openapi_extra={
        "requestBody": {"required": True, "content": {"image/jpeg": {}, "image/png": {}}}
    },
)
async def upload(
    request: Request,
    _p: Uploader,
    state: State,
    conn: Db,
    content_type: Annotated[str, Header()],
    asset_id: Ident | None = None,
    device_id: Ident | None = None,
    captured_at: AwareDatetime | None = None,
) -> ImageOut:
    if content_type.split(";")[0].strip() not in _IMAGE_CONTENT:
        raise HTTPException(415, "send the photo as image/jpeg or image/png")
    # GuardMiddleware stops the stream at max_upload_bytes; this reads what is left.
    data = await request.body()
    if not data:
        raise HTTPException(422, "empty body")
    return await run_in_threadpool(
        _store_upload, state, conn, data, asset_id, device_id, captured_at
    )


def _store_upload(
    state: AppState,
    conn: q.Conn,
    data: bytes,
    asset_id: str | None,
    device_id: str | None,
    captured_at: datetime | None,
) -> ImageOut:
    try:
        header = decode_checked(data)
    except ImageRejectedError as exc:
        raise HTTPException(415, str(exc)) from exc
    site = "api"
    if asset_id is not None:
        try:
            site = q.get_asset(conn, asset_id).site_id
        except q.NotFoundError as exc:
            raise HTTPException(409, str(exc)) from exc
    try:
        stored = write_blob(
            state.blob_dir, data, header.content_type, site=site, device=device_id or "upload"
        )
    except BlobError as exc:
        raise HTTPException(503, "the photo could not be stored") from exc
    now = state.clock()
    image_id = f"p-{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
    q.insert_image(
        conn,
        q.NewImage(
            id=image_id,
            device_id=device_id,
            asset_id=asset_id,
            captured_at=captured_at,
            blob_key=stored.key,
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            content_type=header.content_type,
            width=header.width,
            height=header.height,
            meta={},
        ),
    )
    conn.commit()
    return ImageOut.model_validate(q.get_image(conn, image_id))


@router.get(
    "/images/{image_id}/detections",
    summary="What the models (and inspectors' added boxes) found on one photo",
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def image_detections(image_id: ImageId, _p: Reader, conn: Db) -> list[DetectionOut]:
    q.get_image(conn, image_id)
    return [DetectionOut.model_validate(d) for d in q.detections_for(conn, [image_id])]


@router.get("/detections", summary="Search detections", tags=["detections"], responses=AUTH_ERRORS)
def list_detections(
    _p: Reader,
    conn: Db,
    image_id: Ident | None = None,
    damage_type: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = None,
    model_version: Annotated[str | None, Query(max_length=100)] = None,
    min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[DetectionOut]:
    rows = q.list_detections(
        conn,
        image_id=image_id,
        damage_type=damage_type,
        min_confidence=min_confidence,
        model_version=model_version,
        limit=limit,
        offset=offset,
    )
    return [DetectionOut.model_validate(d) for d in rows]


@router.get(
    "/detections/{detection_id}",
    summary="One detection",
    tags=["detections"],
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def get_detection(
    detection_id: Annotated[int, Path(ge=1, le=2**63 - 1)], _p: Reader, conn: Db
) -> DetectionOut:
    return DetectionOut.model_validate(q.get_detection(conn, detection_id))
