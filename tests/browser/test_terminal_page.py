"""The store terminal page in Debian's Chromium: enrol, scan, redeem part, receipt, refund — and never
a double debit, whether the clerk double-taps or the network loses the answer."""

# ruff: noqa: RUF001 (the Chinese labels use full-width punctuation)

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, Request, Route, expect

from giftcards.value import codes
from tests.browser.pages import watch
from tests.browser.shop import Shop
from tests.e2e.test_designs_gifts import bought, claimed
from tests.support.api import issue_card
from tests.support.terminals import create_store, create_terminal, qr_payload

pytestmark = pytest.mark.browser

TABLET = {"width": 800, "height": 1280}


@pytest_asyncio.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport=TABLET, locale="en-GB", has_touch=True)
    yield ctx
    await ctx.close()


async def enrol(page: Page, shop: Shop, code: str, screenshot_prefix: str | None = None) -> None:
    await page.goto(shop.url("/terminal"))
    await expect(page.locator("#screen-enrol")).to_be_visible()
    await page.fill("#enrol-code", code)
    if screenshot_prefix is not None:
        await page.screenshot(path=str(shop.artifacts / f"{screenshot_prefix}1-enrol.png"))
    await page.click("#enrol-submit")
    await expect(page.locator("#screen-scan")).to_be_visible()


async def ledger(db: asyncpg.Connection, card_id: str) -> tuple[list[tuple[str, int]], int]:
    rows = await db.fetch("SELECT kind, amount FROM ledger_entries WHERE card_id = $1 ORDER BY id", card_id)
    balance = await db.fetchval("SELECT balance FROM cards WHERE id = $1", card_id)
    return [(r["kind"], r["amount"]) for r in rows], balance


async def test_enrol_scan_redeem_part_see_the_receipt_and_refund_it(
    context: BrowserContext, shop: Shop
) -> None:
    store = await create_store(shop.client, shop.merchant, name="Jing'an Flagship")
    created = await create_terminal(shop.client, shop.merchant, store["id"], "clerk", label="Till 1")
    card = await issue_card(shop.client, shop.merchant, 10_000, campaign="qixi-2026")
    payload = await qr_payload(shop.client, shop.merchant, card["id"])
    page = await context.new_page()
    problems = watch(page)

    await enrol(page, shop, created["enrollment"]["code"], "terminal-")
    token = await page.evaluate("localStorage.getItem('giftcards.terminal.token')")
    assert token.startswith(f"gt_{shop.merchant.id}_")
    await expect(page.locator("#who")).to_have_text("Till 1 · Jing'an Flagship · clerk")
    camera_supported = await page.evaluate("'BarcodeDetector' in window")
    assert await page.locator("#camera").is_visible() == camera_supported

    # A hardware scanner types the payload and presses Enter.
    await page.locator("#scan").focus()
    await page.keyboard.type(payload)
    await page.keyboard.press("Enter")
    await expect(page.locator("#screen-card")).to_be_visible()
    await expect(page.locator("#card-balance")).to_have_text("¥100.00")
    await expect(page.locator("#card-currency")).to_have_text("CNY")
    await expect(page.locator("#card-state")).to_have_text("active")
    await expect(page.locator("#card-expires")).to_have_text("never")
    await expect(page.locator("#quick button").last).to_have_text("Full balance ¥100.00")
    await expect(page.locator("#card-thumb")).to_be_visible()  # the design, fetched with the token
    assert await page.locator("#card-thumb").evaluate("img => img.naturalWidth") == 240
    await page.screenshot(path=str(shop.artifacts / "terminal-2-card.png"))

    await page.fill("#amount", "30")
    await page.click("#continue")
    await expect(page.locator("#screen-confirm")).to_be_visible()
    await expect(page.locator("#confirm-text")).to_have_text(f"Take ¥30.00 from card ···{card['code_last4']}")
    await page.screenshot(path=str(shop.artifacts / "terminal-3-confirm.png"))
    keys: list[str | None] = []
    page.on(
        "request",
        lambda r: (
            keys.append(r.headers.get("idempotency-key")) if r.url.endswith("/v1/redemptions") else None
        ),
    )
    await page.dblclick("#confirm")
    await expect(page.locator("#screen-receipt")).to_be_visible()
    await expect(page.locator("#receipt-taken")).to_have_text("¥30.00")
    await expect(page.locator("#receipt-left")).to_have_text("¥70.00")
    await expect(page.locator("#receipt-remainder-row")).to_be_hidden()
    reference = await page.locator("#receipt-reference").text_content()
    assert reference is not None and reference.startswith("act_")
    await page.screenshot(path=str(shop.artifacts / "terminal-4-receipt.png"))
    assert len(set(keys)) == 1 and keys[0]  # however many requests the double click made, one key
    assert await ledger(shop.db, card["id"]) == ([("issue", 10_000), ("redeem", -3_000)], 7_000)

    await page.click("#next")
    await expect(page.locator("#screen-scan")).to_be_visible()
    row = page.locator(f'#today li[data-redemption="{reference}"]')
    await expect(row).to_contain_text("¥30.00")
    await expect(row).to_contain_text(card["code_last4"])
    await page.screenshot(path=str(shop.artifacts / "terminal-5-today.png"))
    await row.locator("button.refund").click()
    await expect(page.locator("#confirm-text")).to_have_text(
        f"Give back ¥30.00 to card ···{card['code_last4']}"
    )
    await page.click("#confirm")
    await expect(page.locator("#receipt-title")).to_have_text("Refund done")
    await expect(page.locator("#receipt-amount-label")).to_have_text("Refunded")
    await expect(page.locator("#receipt-taken")).to_have_text("¥30.00")
    await expect(page.locator("#receipt-left")).to_have_text("¥100.00")
    await page.screenshot(path=str(shop.artifacts / "terminal-6-refund.png"))
    assert await ledger(shop.db, card["id"]) == (
        [("issue", 10_000), ("redeem", -3_000), ("refund", 3_000)],
        10_000,
    )
    await page.click("#next")
    await expect(row.locator("button.refund")).to_have_count(0)
    await expect(row).to_contain_text("Refunded ¥30.00")

    log = (await shop.client.get("/v1/staff_log", headers=shop.merchant.headers)).json()["data"]
    assert [e["action"] for e in reversed(log)] == ["enroll", "lookup", "redeem", "refund"]
    assert problems == []


async def test_a_lost_answer_is_retried_with_the_same_key_and_debits_once(
    context: BrowserContext, shop: Shop
) -> None:
    store = await create_store(shop.client, shop.merchant)
    created = await create_terminal(shop.client, shop.merchant, store["id"])
    card = await issue_card(shop.client, shop.merchant, 5_000)
    page = await context.new_page()
    await enrol(page, shop, created["enrollment"]["code"])
    await page.fill("#scan", card["code"])
    await page.press("#scan", "Enter")
    await page.fill("#amount", "12.34")
    await page.click("#continue")

    sent: list[str | None] = []

    async def lose_first_answer(route: Route, request: Request) -> None:
        sent.append(request.headers.get("idempotency-key"))
        if len(sent) == 1:
            await route.fetch()  # the server does the work …
            await route.abort("connectionreset")  # … but the answer never reaches the page
        else:
            await route.continue_()

    await page.route("**/v1/redemptions", lose_first_answer)
    await page.click("#confirm")
    await expect(page.locator("#notice-text")).to_contain_text("No connection")
    await expect(page.locator("#screen-confirm")).to_be_visible()
    await page.screenshot(path=str(shop.artifacts / "terminal-7-network-error.png"))
    # Even going back and asking again for the same thing reuses the key of the lost attempt.
    await page.click("#confirm-cancel")
    await expect(page.locator("#screen-card")).to_be_visible()
    await page.click("#continue")
    await page.click("#confirm")
    await expect(page.locator("#receipt-taken")).to_have_text("¥12.34")
    await expect(page.locator("#receipt-left")).to_have_text("¥37.66")
    assert len(sent) == 2 and sent[0] == sent[1] and sent[0]
    assert await ledger(shop.db, card["id"]) == ([("issue", 5_000), ("redeem", -1_234)], 3_766)


async def test_typed_codes_are_checked_as_you_type_and_short_cards_offer_what_is_there_in_chinese(
    browser: Browser, shop: Shop
) -> None:
    store = await create_store(shop.client, shop.merchant, name="静安店")
    created = await create_terminal(shop.client, shop.merchant, store["id"], "manager", label="一号机")
    cards = [await issue_card(shop.client, shop.merchant, 2_000) for _ in range(8)]
    card = cards[0]
    ctx = await browser.new_context(viewport={"width": 600, "height": 1000}, locale="zh-CN", has_touch=True)
    try:
        page = await ctx.new_page()
        problems = watch(page)
        await enrol(page, shop, created["enrollment"]["code"])
        await expect(page.locator("h1")).to_have_text("礼品卡核销终端")

        # The page's check symbol is the server's, symbol for symbol.
        server_codes = [codes.normalize_code(c["code"]) for c in cards]
        mutated = []
        for code in server_codes:
            for position in (0, 7, 19):
                for symbol in (codes.ALPHABET[0], codes.ALPHABET[17], codes.ALPHABET[31]):
                    mutated.append(code[:position] + symbol + code[position + 1 :])
            mutated.append(code[:5] + code[6] + code[5] + code[7:])  # adjacent transposition
        bodies = ["".join(secrets.choice(codes.ALPHABET) for _ in range(19)) for _ in range(200)]
        verdicts = await page.evaluate(
            "([candidates, bodies]) => [candidates.map((c) => GiftcardCodes.isValid(c)),"
            " bodies.map((b) => GiftcardCodes.checkSymbol(b))]",
            [server_codes + [codes.format_code(c) for c in server_codes] + mutated, bodies],
        )
        assert verdicts[0] == [True] * (2 * len(server_codes)) + [codes.is_well_formed(m) for m in mutated]
        assert verdicts[1] == [codes.check_symbol(b) for b in bodies]

        # A typo is caught as you type, before any lookup.
        typo = card["code"][:-1] + next(s for s in codes.ALPHABET if s != card["code"][-1])
        await page.fill("#scan", card["code"][:9])
        await expect(page.locator("#code-hint")).to_have_text("已输入 8/20 位")
        await page.fill("#scan", typo)
        await expect(page.locator("#code-hint")).to_have_text("卡号有误，请再核对一次")
        await page.press("#scan", "Enter")
        await expect(page.locator("#screen-scan")).to_be_visible()
        await page.screenshot(path=str(shop.artifacts / "terminal-8-typo-zh.png"))
        await page.fill("#scan", card["code"].lower())
        await expect(page.locator("#code-hint")).to_have_text("卡号格式正确")
        await page.press("#scan", "Enter")
        await expect(page.locator("#card-balance")).to_have_text("¥20.00")
        await expect(page.locator("#card-state")).to_have_text("可用")
        await expect(page.locator("#block")).to_be_visible()  # a manager terminal

        await page.fill("#amount", "50.00")
        await page.click("#continue")
        await page.click("#confirm")
        await expect(page.locator("#notice-text")).to_have_text("余额不足：卡内仅有 ¥20.00。")
        await expect(page.locator("#notice-action")).to_have_text("先扣除 ¥20.00")
        await page.screenshot(path=str(shop.artifacts / "terminal-9-not-enough-zh.png"))
        await page.click("#notice-action")
        await page.click("#confirm")
        await expect(page.locator("#receipt-taken")).to_have_text("¥20.00")
        await expect(page.locator("#receipt-left")).to_have_text("¥0.00")
        await expect(page.locator("#receipt-remainder")).to_have_text("¥30.00")
        await page.screenshot(path=str(shop.artifacts / "terminal-10-partial-receipt-zh.png"))
        assert await ledger(shop.db, card["id"]) == ([("issue", 2_000), ("redeem", -2_000)], 0)

        # The manager blocks another card; the page then says so in plain words.
        await page.click("#next")
        await page.fill("#scan", cards[1]["code"])
        await page.press("#scan", "Enter")
        await page.click("#block")
        await page.click("#confirm")
        await expect(page.locator("#notice-text")).to_have_text("此卡已冻结。")
        await page.fill("#scan", cards[1]["code"])
        await page.press("#scan", "Enter")
        await expect(page.locator("#card-state")).to_have_text("已冻结")
        await expect(page.locator("#notice-text")).to_have_text("此卡已被冻结。")
        await page.screenshot(path=str(shop.artifacts / "terminal-11-blocked-zh.png"))
        assert problems == []
    finally:
        await ctx.close()


async def test_a_revoked_terminal_is_sent_back_to_enrolment(context: BrowserContext, shop: Shop) -> None:
    store = await create_store(shop.client, shop.merchant)
    created = await create_terminal(shop.client, shop.merchant, store["id"])
    card = await issue_card(shop.client, shop.merchant, 1_000)
    page = await context.new_page()
    await enrol(page, shop, created["enrollment"]["code"])
    await shop.client.post(f"/v1/terminals/{created['id']}/revoke", headers=shop.merchant.headers)
    await page.fill("#scan", card["code"])
    await page.press("#scan", "Enter")
    await expect(page.locator("#screen-enrol")).to_be_visible()
    await expect(page.locator("#notice-text")).to_have_text(
        "This terminal is no longer enrolled. Enrol it again."
    )
    assert await page.evaluate("localStorage.getItem('giftcards.terminal.token')") is None


async def test_a_payload_of_a_card_that_was_passed_on_scans_as_a_qr_and_an_older_one_is_refused(
    context: BrowserContext, shop: Shop
) -> None:
    """A card that has had a holder carries its payload generation: a 154-character version 2 payload."""
    store = await create_store(shop.client, shop.merchant)
    created = await create_terminal(shop.client, shop.merchant, store["id"])
    gift = await bought(shop.client, shop.merchant)
    before = await qr_payload(shop.client, shop.merchant, gift["card"]["id"])
    await claimed(shop.client, gift["link"])
    payload = await qr_payload(shop.client, shop.merchant, gift["card"]["id"])
    assert before.startswith("GC1") and payload.startswith("GC2") and len(payload) == 154
    page = await context.new_page()
    problems = watch(page)
    await enrol(page, shop, created["enrollment"]["code"])
    await page.locator("#scan").focus()
    await page.keyboard.type(before)
    await page.keyboard.press("Enter")
    await expect(page.locator("#notice-text")).to_have_text(
        "This QR code is not a valid gift card. Ask for a fresh one."
    )
    await page.fill("#scan", "")
    await page.locator("#scan").focus()
    await page.keyboard.type(payload)
    await page.keyboard.press("Enter")
    await expect(page.locator("#screen-card")).to_be_visible()
    await expect(page.locator("#card-balance")).to_have_text("¥520.00")
    assert problems == []
