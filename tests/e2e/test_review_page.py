"""The review page in a real browser: Debian's headless Chromium driven by Playwright,
against uvicorn serving the app on a free port, on a real PostgreSQL seeded with three
flagged photos. An inspector logs in and reviews all three with the keyboard alone:
confirms, rejects, changes a class, draws a missing box, adjusts it, grades a member
and the asset, switches language; the database shows every decision.

Screenshots are kept as test artefacts in ``$MAMORI_ARTIFACTS_DIR`` (default
``var/test-artifacts``); the main one is also written to ``var/review.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import sync_playwright
from pydantic import SecretStr

from api.app import create_app
from api.demo_seed import seed_review_demo
from api.server import ServerThread
from core.settings import ApiSettings, DatabaseSettings
from tests.support import migrated_database

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "tanaka-reviews-bridges"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("MAMORI_ARTIFACTS_DIR", ROOT / "var" / "test-artifacts"))


@pytest.fixture(scope="module")
def e2e_database(pg_admin_url: str) -> Iterator[str]:
    with migrated_database(pg_admin_url, "mamori_e2e") as url:
        yield url


@pytest.fixture(scope="module")
def server(e2e_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    blob_dir = tmp_path_factory.mktemp("blobs")
    with psycopg.connect(e2e_database) as conn:
        seed_review_demo(conn, blob_dir, inspector="tanaka", password=PASSWORD)
    settings = ApiSettings(
        secret_key=SecretStr("e2e-secret-" + "q" * 40),
        blob_dir=blob_dir,
        database=DatabaseSettings(url=SecretStr(e2e_database), pool_size=4),
    )
    thread = ServerThread(create_app(settings, e2e_database))
    yield thread.start()
    thread.stop()


def _reviews(url: str) -> list[tuple[str, str, str | None, str | None, str | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT r.image_id, r.action, r.damage_type, r.grade, r.member
               FROM reviews r ORDER BY r.id"""
        ).fetchall()
    return [(str(a), str(b), c, d, e) for a, b, c, d, e in rows]


def test_an_inspector_reviews_three_photos_with_the_keyboard(
    server: str, e2e_database: str
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="ja-JP")
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        keys = page.keyboard

        def press(key: str) -> None:
            """A key whose action saves and reloads the page."""
            with page.expect_navigation():
                keys.press(key)

        # -- log in, Japanese first, keyboard only -------------------------------------
        page.goto(f"{server}/review")
        assert page.url.endswith("/review/login")
        assert page.locator("html").get_attribute("lang") == "ja"
        assert page.get_by_label("ユーザー名").is_visible()
        keys.type("tanaka")  # the username field has focus (autofocus)
        keys.press("Tab")
        keys.type(PASSWORD)
        press("Enter")
        assert "/review" in page.url
        assert page.locator("h1").inner_text().startswith("写真 demo-spalling-0003")

        # Every form control has a label (WCAG 1.3.1 / 4.1.2).
        unlabeled = page.evaluate(
            """() => Array.from(document.querySelectorAll(
                       'input:not([type=hidden]), select, textarea'))
                   .filter(e => e.labels.length === 0).map(e => e.id || e.name)"""
        )
        assert unlabeled == []

        keys.press("?")
        assert page.locator("#help").is_visible()
        keys.press("Escape")
        assert not page.locator("#help").is_visible()

        # -- photo 1 (most severe: exposed rebar): confirm, then reject ------------------
        assert page.locator("tr.finding.selected").get_attribute("data-type") == "spalling"
        press("c")
        assert page.locator("#status").inner_text() == "記録しました。"
        assert page.locator("tr.finding.selected").get_attribute("data-type") == "efflorescence"
        press("x")
        press("n")  # to the next photo in the queue

        # -- photo 2 (wide crack): change a class, confirm, draw a box, adjust, grade ----
        assert page.locator("h1").inner_text().startswith("写真 demo-crack-0001")
        page.screenshot(path=str(ARTIFACTS / "review-pending-ja.png"), full_page=True)
        keys.press("j")  # select the hairline crack
        press("3")  # → corrosion (third class)
        press("c")  # the wide crack, first pending again
        keys.press("a")  # draw the box the model missed
        for _ in range(3):
            keys.press("ArrowRight")
        keys.press("Shift+ArrowDown")
        assert page.locator("#draft").is_visible()
        press("Enter")
        added = page.locator("tr.finding", has_text="点検者が追加")
        assert added.count() == 1
        added.locator(".act-confirm").focus()
        keys.press("e")
        keys.press("ArrowLeft")
        press("Enter")
        keys.press("g")
        keys.type("主桁 Mg0101")
        keys.press("Tab")
        keys.press("ArrowDown")
        keys.press("ArrowDown")  # Ⅲ
        keys.press("Tab")
        keys.type("幅0.35mm、早期に補修")
        keys.press("Tab")
        press("Enter")
        assert "主桁 Mg0101: Ⅲ 早期措置段階" in page.locator("#grades").inner_text()
        page.screenshot(path=str(ARTIFACTS / "review-crack-ja.png"), full_page=True)

        # -- language switch and back -----------------------------------------------------
        press("l")
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.locator("#findings-title").inner_text() == "Findings"
        page.screenshot(path=str(ARTIFACTS / "review-crack-en.png"), full_page=True)
        press("l")
        assert page.locator("html").get_attribute("lang") == "ja"

        # -- photo 3 (corrosion): confirm, reject, grade the whole asset -------------------
        press("n")
        assert page.locator("h1").inner_text().startswith("写真 demo-corrosion-0002")
        press("c")
        press("x")
        keys.press("g")
        keys.press("Tab")  # member left empty: the asset as a whole
        keys.press("ArrowDown")  # Ⅱ
        keys.press("Tab")
        keys.press("Tab")
        press("Enter")
        page.screenshot(path=str(ARTIFACTS / "review-corrosion-ja.png"), full_page=True)
        assert "レビュー待ち (0)" in page.locator("#queue-title").inner_text()
        browser.close()

    shutil.copyfile(ARTIFACTS / "review-crack-ja.png", ROOT / "var" / "review.png")
    assert errors == [], "\n".join(errors)
    reviews = _reviews(e2e_database)
    assert [(r[0], r[1]) for r in reviews] == [
        ("demo-spalling-0003", "confirm"),
        ("demo-spalling-0003", "reject"),
        ("demo-crack-0001", "reclassify"),
        ("demo-crack-0001", "confirm"),
        ("demo-crack-0001", "add"),
        ("demo-crack-0001", "adjust"),
        ("demo-crack-0001", "grade"),
        ("demo-corrosion-0002", "confirm"),
        ("demo-corrosion-0002", "reject"),
        ("demo-corrosion-0002", "grade"),
    ]
    assert reviews[2][2] == "corrosion"
    assert reviews[4][2] == "crack"
    assert reviews[6][3:] == ("III", "主桁 Mg0101")
    assert reviews[9][3:] == ("II", None)
    assert all(r for r in reviews)
