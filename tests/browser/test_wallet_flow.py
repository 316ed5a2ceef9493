"""The wallet in Debian's Chromium: open a wallet link, see the cards, accept a gift waiting there, open a
card and show its QR, give another card away and see it under "sent" as waiting; the recipient claims it
in a second browser context, and the gifter's wallet then shows it claimed. Screenshots go to the
artifacts folder as wallet-*.png."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from tests.browser.pages import watch
from tests.support.api import Merchant
from tests.support.designs import create_design
from tests.support.gifts import buy, card_held_by
from tests.support.servers import LiveServer
from tests.support.wallet import open_wallet_session

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}
ALICE = "o_alice_wallet_browser"
BOB = "o_bob_wallet_browser"


async def card_order(page: Page) -> list[str]:
    return await page.locator("#cards li.card").evaluate_all("items => items.map(i => i.dataset.cardId)")


async def test_open_the_wallet_show_a_qr_give_a_card_and_see_the_gift_claimed(
    browser: Browser,
    server: LiveServer,
    client: httpx.AsyncClient,
    merchant: Merchant,
    db: asyncpg.Connection,
    artifacts: Path,
) -> None:
    qixi = await create_design(
        client, merchant, card_validity_days=30, background_color="#7a0f2e", accent_color="#f48fb1"
    )
    thanks = await create_design(
        client, merchant, name="Thank you", occasion="thank_you", background_color="#1f4e5f"
    )
    kept = await card_held_by(client, merchant, qixi["id"], ALICE, 52000)
    to_give = await card_held_by(client, merchant, thanks["id"], ALICE, 131400)
    spent = await card_held_by(client, merchant, thanks["id"], ALICE, 52000)
    code = (await client.get(f"/v1/cards/{spent}/code", headers=merchant.headers)).json()["code"]
    paid = await client.post(
        "/v1/redemptions", json={"code": code, "amount": 52000}, headers=merchant.headers
    )
    assert paid.status_code == 201
    waiting = await buy(
        client, merchant, thanks["id"], 52000, recipient_owner_id=ALICE, message="谢谢你 🌸 <b>!</b>"
    )
    session = await open_wallet_session(client, merchant, ALICE, display_name="Alice")

    # Alice opens her wallet: what she can spend, a gift waiting, her cards in order.
    alice = await browser.new_context(viewport=PHONE, locale="zh-CN")
    page = await alice.new_page()
    problems = watch(page)
    wallet_path = urlsplit(session["url"]).path
    await page.goto(server.url + wallet_path)
    await expect(page.locator("#cards li.card")).to_have_count(3)
    assert await card_order(page) == [kept, to_give, spent]
    await expect(page.locator("#totals li")).to_have_text(["¥1,834.00"])
    await expect(page.locator(f'#cards li[data-card-id="{spent}"] .badge')).to_have_text("已用完")
    await expect(page.locator(f'#cards li[data-card-id="{spent}"] button.send')).to_have_count(0)
    received = page.locator(f'#received li[data-gift-id="{waiting["id"]}"]')
    await expect(received.locator(".message")).to_have_text("谢谢你 🌸 <b>!</b>")  # text, not markup
    thumbnails = page.locator("img.thumb")
    await expect(thumbnails).to_have_count(4)
    for index in range(4):
        await expect(thumbnails.nth(index)).to_have_js_property("naturalWidth", 240)  # the pictures loaded
    await page.screenshot(path=str(artifacts / "wallet-1-cards-and-a-gift-waiting.png"), full_page=True)

    await received.locator("button.claim").click()
    await expect(page.locator("#ok")).to_have_text("这张卡已归你所有。")
    await expect(page.locator("#received-section")).to_be_hidden()
    await expect(page.locator("#cards li.card")).to_have_count(4)
    assert await card_order(page) == [kept, *sorted([to_give, waiting["card"]["id"]]), spent]
    await expect(page.locator("#totals li")).to_have_text(["¥2,354.00"])

    # She opens a card: its page shows the rotating QR, which a till reads as that card.
    await page.locator(f'#cards li[data-card-id="{kept}"] button.open').click()
    await page.wait_for_url(re.compile(r"/c/[A-Za-z0-9_-]{32}$"))
    await expect(page.locator("#balance")).to_have_text("¥520.00")
    await expect(page.locator("#qr")).to_have_attribute("src", re.compile(r"^data:image/svg\+xml"))
    await page.screenshot(path=str(artifacts / "wallet-2-card-qr.png"), full_page=True)
    payload = await page.locator("#qr").get_attribute("data-payload")
    looked_up = await client.post("/v1/cards/lookup", json={"qr_payload": payload}, headers=merchant.headers)
    assert looked_up.status_code == 200 and looked_up.json()["id"] == kept

    # Back in the wallet she gives another card to Bob.
    await page.goto(server.url + wallet_path)
    await page.locator(f'#cards li[data-card-id="{to_give}"] button.send').click()
    await expect(page.locator("#send-panel")).to_be_visible()
    await expect(page.locator("#sender-name")).to_have_value("Alice")
    await page.fill("#recipient-name", "Bob")
    await page.fill("#gift-message", "生日快乐 🎂")
    await page.screenshot(path=str(artifacts / "wallet-3-give-a-card.png"), full_page=True)
    await page.click("#send-submit")
    await expect(page.locator("#share-panel")).to_be_visible()
    link = await page.locator("#share-link").input_value()
    assert re.fullmatch(r"https?://[^/]+/g/[A-Za-z0-9_-]{32}", link)
    sent = page.locator("#sent li.sent").first
    await expect(sent).to_have_attribute("data-state", "waiting")
    await expect(sent.locator(".badge")).to_have_text("等待领取")
    await expect(sent.locator(".to")).to_have_text("致 Bob")
    await expect(page.locator(f'#cards li[data-card-id="{to_give}"]')).to_have_count(0)  # on its way
    gift_id = await sent.get_attribute("data-gift-id")
    await expect(sent.locator("img.thumb")).to_have_js_property("naturalWidth", 240)
    await page.screenshot(path=str(artifacts / "wallet-4-sent-waiting.png"), full_page=True)
    assert (
        await db.fetchval("SELECT card_id FROM gifts WHERE id = $1 AND state = 'waiting'", gift_id) == to_give
    )

    # Bob, on his own phone, opens the link and claims the card.
    bob = await browser.new_context(viewport=PHONE, locale="en-GB")
    bob_page = await bob.new_page()
    bob_problems = watch(bob_page)
    await bob_page.goto(server.url + urlsplit(link).path)
    await expect(bob_page.locator("#message")).to_have_text("生日快乐 🎂")
    await bob_page.fill("#owner-id", BOB)
    await bob_page.click("#claim")
    await bob_page.wait_for_url(re.compile(r"/c/[A-Za-z0-9_-]{32}$"))
    await expect(bob_page.locator("#balance")).to_have_text("¥1,314.00")
    await bob_page.screenshot(path=str(artifacts / "wallet-5-recipient-claimed.png"), full_page=True)
    assert bob_problems == []
    await bob.close()

    # Alice's wallet now shows the gift claimed.
    await page.reload()
    sent = page.locator(f'#sent li[data-gift-id="{gift_id}"]')
    await expect(sent).to_have_attribute("data-state", "claimed")
    await expect(sent.locator(".badge")).to_have_text("已领取")
    await expect(sent.locator("button")).to_have_count(0)  # nothing to withdraw or share any more
    assert await card_order(page) == [kept, waiting["card"]["id"], spent]
    await expect(sent.locator("img.thumb")).to_have_js_property("naturalWidth", 240)
    await page.screenshot(path=str(artifacts / "wallet-6-sent-claimed.png"), full_page=True)
    assert problems == []
    await alice.close()
    assert await db.fetchval("SELECT owner_id FROM cards WHERE id = $1", to_give) == BOB


async def test_an_expired_wallet_link_shows_a_friendly_page(
    browser: Browser,
    server: LiveServer,
    client: httpx.AsyncClient,
    merchant: Merchant,
    db: asyncpg.Connection,
    artifacts: Path,
) -> None:
    session = await open_wallet_session(client, merchant, ALICE)
    context = await browser.new_context(viewport=PHONE, locale="en-GB")
    page = await context.new_page()
    problems = watch(page)
    path = urlsplit(session["url"]).path
    await page.goto(server.url + path)
    await expect(page.locator("#no-cards")).to_be_visible()
    await expect(page.locator("#wallet")).to_have_attribute("data-loaded", "1")  # every list is in
    # The session ends while the page is open (moved, not waited for): the next action says so kindly.
    await db.execute(
        """UPDATE wallet_sessions SET created_at = now() - interval '31 minutes',
                                      expires_at = now() - interval '1 minute' WHERE id = $1""",
        session["id"],
    )
    await page.locator('#tabs button[data-status="expired"]').click()
    await expect(page.locator("#expired")).to_have_text(
        "This wallet link has expired. Open your wallet again from the shop."
    )
    await expect(page.locator('#tabs button[data-status="active"]')).to_be_disabled()
    await page.goto(server.url + path)
    await expect(page.locator("#notice")).to_contain_text("not valid or has expired")
    await page.screenshot(path=str(artifacts / "wallet-7-expired-link.png"), full_page=True)
    assert problems == []
    await context.close()
