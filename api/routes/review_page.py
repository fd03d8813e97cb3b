"""``/review``: the inspectors' page, rendered on the server (Jinja2, autoescaped).

Login sets an HttpOnly, SameSite=Strict session cookie holding the same signed token
the API issues; every write the page makes goes through ``/api/v1`` with an
``X-CSRF-Token`` header derived from that token (see ``api.deps``). The login form
itself is protected by a double-submit token in a short-lived cookie.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from importlib import resources
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from api.deps import SESSION_COOKIE, Db, State, authenticate
from api.login import LoginRefusedError, login
from api.review.i18n import MESSAGES, Lang, pick_lang
from api.review.theme import css_variables
from api.review_service import image_detail, review_queue
from api.routes.auth import client_address
from api.security import Principal, Role, TokenError
from api.taxonomy import DAMAGE_TYPES, GRADE_LABELS, GRADES, label
from store import api_auth
from store import api_queries as q

router = APIRouter(include_in_schema=False)

LANG_COOKIE: Final = "mamori_lang"
LOGIN_CSRF_COOKIE: Final = "mamori_login_csrf"
_STATIC: Final = {"review.js": "text/javascript", "review.css": "text/css"}
_JS_KEYS: Final = ("box_mode", "saved", "error")


@functools.cache
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("api.review", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        auto_reload=False,
    )


@functools.cache
def _static(name: str) -> bytes:
    data = resources.files("api.review").joinpath("static", name).read_bytes()
    if name.endswith(".css"):
        data = css_variables().encode() + data
    return data


def _render(template: str, lang: Lang, status_code: int = 200, **context: Any) -> HTMLResponse:
    other = "en" if lang == "ja" else "ja"
    context.setdefault("lang_href", f"?lang={other}")
    html = (
        _templates()
        .get_template(template)
        .render(
            lang=lang,
            t=MESSAGES[lang],
            label=lambda name: label(name, lang),
            grade_label=lambda g: GRADE_LABELS[g][0 if lang == "ja" else 1],
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status_code)
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="strict")
    return response


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


LangQuery = Annotated[Literal["ja", "en"] | None, Query()]


@router.get("/review/static/{name}")
def static(name: Annotated[str, Path(max_length=32)]) -> Response:
    media_type = _STATIC.get(name)
    if media_type is None:
        raise HTTPException(404, "not found")
    return Response(
        _static(name),
        media_type=f"{media_type}; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


def _login_page(
    request: Request, lang: Lang, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = _render("login.html", lang, status_code, csrf=token, error=error)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=1800,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/review",
    )
    return response


@router.get("/review/login")
def login_form(request: Request, lang: LangQuery = None) -> HTMLResponse:
    return _login_page(request, pick_lang(lang, request.cookies.get(LANG_COOKIE)))


@router.post("/review/login")
async def login_submit(
    request: Request, state: State, conn: Db, lang: LangQuery = None
) -> Response:
    chosen = pick_lang(lang, request.cookies.get(LANG_COOKIE))
    t = MESSAGES[chosen]
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    sent = (form.get("csrf") or [""])[0]
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent, expected):
        return _login_page(request, chosen, t["login_expired"], 403)
    username = (form.get("username") or [""])[0][:63]
    password = (form.get("password") or [""])[0][:256]
    try:
        from starlette.concurrency import run_in_threadpool

        result = await run_in_threadpool(
            login, state, conn, username, password, client_address(request)
        )
    except LoginRefusedError as exc:
        message = t["login_limited"] if exc.status_code == 429 else t["login_failed"]
        return _login_page(request, chosen, message, exc.status_code)
    response = RedirectResponse(f"/review?lang={chosen}", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        result.token,
        max_age=state.settings.token_ttl_s,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/review")
    return response


@router.post("/review/logout")
async def logout(request: Request, state: State, conn: Db) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=5)
    token = request.cookies.get(SESSION_COOKIE, "")
    sent = (form.get("csrf") or [""])[0]
    # Without a session there is nothing to end; with one, only the page may end it.
    if token and not hmac.compare_digest(sent, state.signer.csrf_for(token)):
        raise HTTPException(403, "missing or wrong CSRF token")
    if token:
        # The cookie goes, and so does the token in it: a copy of it is refused too.
        try:
            claims = state.signer.verify(token)
        except TokenError:
            claims = None  # expired or foreign: nothing left to revoke
        if claims is not None:
            api_auth.revoke_token(
                conn,
                jti=claims.token_id,
                username=claims.subject,
                at=state.clock(),
                expires_at=claims.expires_at,
            )
            conn.commit()
    response = RedirectResponse("/review/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _page_principal(request: Request, state: State, conn: Db) -> Principal | Response:
    try:
        return authenticate(request, state, conn)
    except HTTPException as exc:
        if exc.status_code == 401:
            return RedirectResponse("/review/login", status_code=303)
        raise


@router.get("/review")
def review(
    request: Request,
    state: State,
    conn: Db,
    image: Annotated[str | None, Query(max_length=63)] = None,
    lang: LangQuery = None,
) -> Response:
    who = _page_principal(request, state, conn)
    if isinstance(who, Response):
        return who
    chosen = pick_lang(lang, request.cookies.get(LANG_COOKIE))
    if who.role is not Role.INSPECTOR:
        return _render("forbidden.html", chosen, 403)
    queue = review_queue(conn, asset_id=None, limit=200)
    image_id = image or (queue[0].image.id if queue else None)
    detail = None
    asset = None
    if image_id is not None:
        try:
            detail = image_detail(conn, image_id, state.blob_dir)
        except q.NotFoundError:
            detail = None
        if detail is not None and detail.image.asset_id:
            try:
                asset = q.get_asset(conn, detail.image.asset_id)
            except q.NotFoundError:
                asset = None
    ids = [item.image.id for item in queue]
    prev_href = next_href = None
    if detail is not None:
        if detail.image.id in ids:
            at = ids.index(detail.image.id)
            if at + 1 < len(ids):
                next_href = f"/review?image={ids[at + 1]}&lang={chosen}"
            if at > 0:
                prev_href = f"/review?image={ids[at - 1]}&lang={chosen}"
        elif ids:
            next_href = f"/review?image={ids[0]}&lang={chosen}"
    other = "en" if chosen == "ja" else "ja"
    here = f"/review?image={detail.image.id}&lang={other}" if detail else f"/review?lang={other}"
    font_px = max(12, round((detail.image.width or 800) / 40)) if detail else 12
    return _render(
        "review.html",
        chosen,
        user=who.name,
        csrf=state.signer.csrf_for(who.token or ""),
        queue=queue,
        detail=detail,
        asset=asset,
        next_href=next_href,
        prev_href=prev_href,
        lang_href=here,
        self_href=f"/review?image={detail.image.id}&lang={chosen}" if detail else "/review",
        damage_types=DAMAGE_TYPES,
        grades=GRADES,
        font_px=font_px,
        js_strings={k: MESSAGES[chosen][k] for k in _JS_KEYS},
    )
