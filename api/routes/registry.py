"""Sites, assets and devices: everyone human reads them, admins create, change, delete.

``PUT`` creates or replaces (idempotent, the id is the client's); ``DELETE`` of a row
that something still refers to is a 409.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from api.deps import AdminUser, Db, Reader
from api.models import AssetIn, AssetOut, DeviceIn, DeviceOut, SiteIn, SiteOut
from api.routes import AUTH_ERRORS, CONFLICT, NOT_FOUND
from core.messages import Ident
from core.registry import AssetKind, AssetSpec, DeviceSpec, SiteSpec
from store import api_queries as q
from store.registry import upsert_asset, upsert_device, upsert_site

router = APIRouter(prefix="/api/v1", tags=["registry"])

IdPath = Annotated[Ident, Path(description="lower-case id: a-z, 0-9, _ and -")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
IdFilter = Annotated[Ident | None, Query()]


@router.get("/sites", summary="List sites", responses=AUTH_ERRORS)
def list_sites(_p: Reader, conn: Db, limit: Limit = 100, offset: Offset = 0) -> list[SiteOut]:
    return [SiteOut.model_validate(r) for r in q.list_sites(conn, limit=limit, offset=offset)]


@router.get("/sites/{site_id}", summary="One site", responses={**AUTH_ERRORS, **NOT_FOUND})
def get_site(site_id: IdPath, _p: Reader, conn: Db) -> SiteOut:
    return SiteOut.model_validate(q.get_site(conn, site_id))


@router.put("/sites/{site_id}", summary="Create or replace a site", responses=AUTH_ERRORS)
def put_site(site_id: IdPath, body: SiteIn, _a: AdminUser, conn: Db) -> SiteOut:
    with q.guard("saving a site"):
        upsert_site(conn, SiteSpec(id=site_id, **body.model_dump()))
    conn.commit()
    return SiteOut.model_validate(q.get_site(conn, site_id))


@router.delete(
    "/sites/{site_id}",
    summary="Delete a site with nothing on it",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**AUTH_ERRORS, **NOT_FOUND, **CONFLICT},
)
def delete_site(site_id: IdPath, _a: AdminUser, conn: Db) -> Response:
    q.delete_row(conn, "sites", site_id)
    conn.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/assets", summary="List assets", responses=AUTH_ERRORS)
def list_assets(
    _p: Reader,
    conn: Db,
    site_id: IdFilter = None,
    kind: AssetKind | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[AssetOut]:
    rows = q.list_assets(
        conn, site_id=site_id, kind=kind.value if kind else None, limit=limit, offset=offset
    )
    return [AssetOut.model_validate(r) for r in rows]


@router.get("/assets/{asset_id}", summary="One asset", responses={**AUTH_ERRORS, **NOT_FOUND})
def get_asset(asset_id: IdPath, _p: Reader, conn: Db) -> AssetOut:
    return AssetOut.model_validate(q.get_asset(conn, asset_id))


@router.put(
    "/assets/{asset_id}",
    summary="Create or replace an asset",
    responses={**AUTH_ERRORS, **CONFLICT},
)
def put_asset(asset_id: IdPath, body: AssetIn, _a: AdminUser, conn: Db) -> AssetOut:
    with q.guard("saving an asset"):
        upsert_asset(conn, AssetSpec(id=asset_id, **body.model_dump()))
    conn.commit()
    return AssetOut.model_validate(q.get_asset(conn, asset_id))


@router.delete(
    "/assets/{asset_id}",
    summary="Delete an asset nothing refers to",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**AUTH_ERRORS, **NOT_FOUND, **CONFLICT},
)
def delete_asset(asset_id: IdPath, _a: AdminUser, conn: Db) -> Response:
    q.delete_row(conn, "assets", asset_id)
    conn.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/devices", summary="List devices", responses=AUTH_ERRORS)
def list_devices(
    _p: Reader,
    conn: Db,
    site_id: IdFilter = None,
    asset_id: IdFilter = None,
    state: Annotated[str | None, Query(pattern=r"^(unknown|online|offline)$")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[DeviceOut]:
    rows = q.list_devices(
        conn, site_id=site_id, asset_id=asset_id, state=state, limit=limit, offset=offset
    )
    return [DeviceOut.model_validate(r) for r in rows]


@router.get("/devices/{device_id}", summary="One device", responses={**AUTH_ERRORS, **NOT_FOUND})
def get_device(device_id: IdPath, _p: Reader, conn: Db) -> DeviceOut:
    return DeviceOut.model_validate(q.get_device(conn, device_id))


@router.put(
    "/devices/{device_id}",
    summary="Register or change a device",
    responses={**AUTH_ERRORS, **CONFLICT},
)
def put_device(device_id: IdPath, body: DeviceIn, _a: AdminUser, conn: Db) -> DeviceOut:
    with q.guard("saving a device"):
        upsert_device(conn, DeviceSpec(id=device_id, **body.model_dump()))
    conn.commit()
    return DeviceOut.model_validate(q.get_device(conn, device_id))


@router.delete(
    "/devices/{device_id}",
    summary="Remove a device with no photos",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**AUTH_ERRORS, **NOT_FOUND, **CONFLICT},
)
def delete_device(device_id: IdPath, _a: AdminUser, conn: Db) -> Response:
    q.delete_row(conn, "devices", device_id)
    conn.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
