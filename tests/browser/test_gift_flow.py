"""A gift in Debian's Chromium: the gifter customises a card (own photo, message), previews and sends it;
the recipient opens the link, claims it and sees balance and QR; a second claim fails. Screenshots go to
the artifacts folder."""

# ruff: noqa: RUF001 (the Chinese labels use full-width punctuation)

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.async_api import Browser, FilePayload, ViewportSize, expect

from tests.browser.pages import watch
from tests.support.api import Merchant
from tests.support.designs import create_design
from tests.support.gifts import buy, claim
from tests.support.servers import LiveServer
from tests.support.wallet import open_customise_session

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}
GIFTER = "o_gifter_browser"
RECIPIENT = "o_recipient_browser"


def photo_jpeg() -> bytes:
    picture = Image.new("RGB", (1200, 900), (250, 220, 230))
    draw = ImageDraw.Draw(picture)
    for i in range(0, 1200, 60):
        draw.ellipse((i, 300 + (i % 180), i + 120, 420 + (i % 180)), fill=(200, 40, 90))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return out.getvalue()


QIXI_LIMITED = {"name": "七夕限定", "stock": 20, "background_color": "#7a0f2e", "accent_color": "#f48fb1"}


async def test_customise_preview_send_then_claim_and_see_balance_and_qr(
    browser: Browser,
    server: LiveServer,
    client: httpx.AsyncClient,
    merchant: Merchant,
    db: asyncpg.Connection,
    artifacts: Path,
) -> None:
    design = await create_design(client, merchant, **QIXI_LIMITED)
    session = await open_customise_session(client, merchant, GIFTER, 131400, sender_name="小明")

    gifter = await browser.new_context(viewport=PHONE, locale="zh-CN")
    page = await gifter.new_page()
    problems = watch(page)
    await page.goto(server.url + urlsplit(session["url"]).path)
    await expect(page.locator("h2")).to_have_text("赠送礼品卡")
    await page.locator("label.design").first.click()
    await page.select_option(f"#amount-{design['id']}", "52000")
    await page.fill("#recipient_name", "小红")
    message = "七夕快乐！愿你每天都开心 💕 <b>not bold</b>"
    await page.fill("#message", message)
    photo: FilePayload = {"name": "us.jpg", "mimeType": "image/jpeg", "buffer": photo_jpeg()}
    await page.set_input_files("#photo", files=[photo])
    await expect(page.locator("#photo-status")).to_have_text(re.compile(r"✓ 1200×900"))
    await page.click("#preview")
    preview = page.locator("#preview-image")
    await expect(preview).to_be_visible()
    # expect() polls from outside the page; wait_for_function's polling evaluates a string in the page,
    # which the pages' CSP forbids (it failed whenever the condition was not already true).
    await expect(page.locator("#preview-image")).to_have_js_property("naturalWidth", 720)
    await page.screenshot(path=str(artifacts / "gift-1-customise-preview.png"), full_page=True)

    await page.click("#send")
    await expect(page.locator("#sent")).to_be_visible()
    link = await page.locator("#link").input_value()
    assert re.fullmatch(r"https?://[^/]+/g/[A-Za-z0-9_-]{32}", link)
    await expect(page.locator("#sent-image")).to_have_js_property("naturalWidth", 720)
    await page.screenshot(path=str(artifacts / "gift-2-sent.png"), full_page=True)
    assert problems == []
    await gifter.close()
    assert await db.fetchval("SELECT sold FROM designs WHERE id = $1", design["id"]) == 1
    assert await db.fetchval("SELECT photo_id IS NOT NULL FROM gifts") is True

    recipient = await browser.new_context(viewport=PHONE, locale="zh-CN")
    page = await recipient.new_page()
    problems = watch(page)
    await page.goto(server.url + urlsplit(link).path)
    await expect(page.locator("#message")).to_have_text(message)  # as text: the <b> is not markup
    await expect(page.locator("#amount")).to_have_text("¥520.00")
    await expect(page.locator("#card-picture")).to_have_js_property("naturalWidth", 720)
    await page.screenshot(path=str(artifacts / "gift-3-recipient-opens-link.png"), full_page=True)
    await page.fill("#owner-id", RECIPIENT)
    await page.click("#claim")
    await page.wait_for_url(re.compile(r"/c/[A-Za-z0-9_-]{32}$"))
    await expect(page.locator("#balance")).to_have_text("¥520.00")
    await expect(page.locator("#qr")).to_have_attribute("src", re.compile(r"^data:image/svg\+xml"))
    await page.click("#show-code")
    await expect(page.locator("#code")).to_have_text(re.compile(r"^[0-9A-Z]{4}(-[0-9A-Z]{4}){3,}$"))
    await page.screenshot(path=str(artifacts / "gift-4-card-page-with-qr.png"), full_page=True)
    payload = await page.locator("#qr").get_attribute("data-payload")
    assert payload is not None
    paid = await client.post(
        "/v1/redemptions", json={"qr_payload": payload, "amount": 2000}, headers=merchant.headers
    )
    assert paid.status_code == 201 and paid.json()["balance_after"] == 50000  # the QR on screen pays
    await page.reload()
    await expect(page.locator("#balance")).to_have_text("¥500.00")
    await expect(page.locator("#history")).to_contain_text("消费")
    assert problems == []
    await recipient.close()

    second = await browser.new_context(viewport=PHONE, locale="en-GB")
    page = await second.new_page()
    await page.goto(server.url + urlsplit(link).path)
    await expect(page.locator("#notice")).to_have_text("This gift has already been claimed.")
    assert await page.locator("#claim").count() == 0
    await page.screenshot(path=str(artifacts / "gift-5-second-claim-refused.png"), full_page=True)
    await second.close()
    again = await claim(client, link, "o_someone_else")
    assert again.status_code == 409 and again.json()["code"] == "gift_already_claimed"
    assert await db.fetchval("SELECT owner_id FROM gifts g JOIN cards c ON c.id = g.card_id") == RECIPIENT


async def test_a_scheduled_gift_shows_a_countdown_in_the_browser(
    browser: Browser, server: LiveServer, client: httpx.AsyncClient, merchant: Merchant, artifacts: Path
) -> None:
    design = await create_design(client, merchant, **QIXI_LIMITED)
    opens = datetime.now(UTC) + timedelta(hours=5)
    bought = await buy(
        client,
        merchant,
        design["id"],
        131400,
        gifter_id=GIFTER,
        sender_name="Ming",
        recipient_name="Hong",
        message="a secret until morning",
        opens_at=opens.isoformat(),
    )
    context = await browser.new_context(viewport=PHONE, locale="en-GB")
    page = await context.new_page()
    problems = watch(page)
    await page.goto(server.url + urlsplit(bought["link"]).path)
    await expect(page.locator("#countdown")).to_have_text(re.compile(r"^0?[45]:\d\d:\d\d$"))
    assert "a secret until morning" not in await page.content()
    await page.screenshot(path=str(artifacts / "gift-6-scheduled-countdown.png"), full_page=True)
    assert problems == []
    await context.close()
