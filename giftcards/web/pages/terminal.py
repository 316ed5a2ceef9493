"""The store terminal page (GET /terminal) and its script and stylesheet.

One page drives the whole flow in the browser through the JSON API: enrol with the one-time code (the
token is kept in localStorage and sent as a bearer token, never in a URL), scan or type, redeem, refund.
The strict CSP allows no inline script or style, so both are files served by declared endpoints; the
labels reach the script as a JSON data block, which the browser never executes.
"""

from __future__ import annotations

import asyncio
from gettext import NullTranslations

from starlette.responses import Response

from giftcards.core import ids
from giftcards.core.errors import DomainError
from giftcards.gifting import card_art, designs, images
from giftcards.value import cards
from giftcards.web.calls import TEXT, Call, Operations, Result
from giftcards.web.routing import Api
from giftcards.web.templating import render, translations

THUMBNAIL_WIDTH = 240


def _messages(catalog: NullTranslations) -> dict[str, str]:
    """The texts the script shows, by key, in the page's language."""
    gettext = catalog.gettext
    return {
        "title": gettext("Gift card terminal"),
        "enrol_heading": gettext("Set up this terminal"),
        "enrol_hint": gettext("Type the enrollment code from the back office."),
        "enrol_code": gettext("Enrollment code"),
        "enrol_button": gettext("Enrol"),
        "scan_label": gettext("Scan a QR code or type a card code"),
        "scan_placeholder": gettext("Scan or type, then Enter"),
        "camera": gettext("Camera"),
        "lookup": gettext("Look up"),
        "balance": gettext("Balance"),
        "currency": gettext("Currency"),
        "expires": gettext("Expires"),
        "never": gettext("never"),
        "state": gettext("State"),
        "amount": gettext("Amount to take"),
        "full_balance": gettext("Full balance"),
        "continue": gettext("Continue"),
        "cancel": gettext("Cancel"),
        "confirm_heading": gettext("Confirm"),
        "confirm_take": gettext("Take {amount} from card ···{last4}"),
        "confirm": catalog.pgettext("button", "Confirm"),
        "block": gettext("Block card"),
        "confirm_block": gettext(
            "Block card ···{last4}? It cannot be used until the back office unblocks it."
        ),
        "blocked_done": gettext("The card is blocked."),
        "receipt": gettext("Receipt"),
        "taken": gettext("Amount taken"),
        "left": gettext("Balance left"),
        "remainder": gettext("Still to pay"),
        "reference": gettext("Reference"),
        "new_sale": gettext("Next customer"),
        "today": gettext("Today's redemptions"),
        "none_today": gettext("No redemptions yet today."),
        "refund": gettext("Refund"),
        "refunded": gettext("Refunded"),
        "confirm_refund": gettext("Give back {amount} to card ···{last4}"),
        "refund_done": gettext("Refund done"),
        "working": gettext("Working…"),
        "code_progress": gettext("{count} of 20 symbols"),
        "code_ok": gettext("Code looks right"),
        "code_typo": gettext("This code has a typo: check it again"),
        "code_bad_char": gettext("Only the letters and digits printed on the card"),
        "state_active": gettext("active"),
        "state_pending": gettext("not activated"),
        "state_blocked": gettext("blocked"),
        "state_deactivated": gettext("deactivated"),
        "state_expired": gettext("expired"),
        "role_clerk": gettext("clerk"),
        "role_manager": gettext("manager"),
        "forget": gettext("Unenrol this device"),
        "amount_invalid": gettext("Enter an amount like 12.50"),
        "err_invalid_code": gettext("No card matches this code. Check it and try again."),
        "err_invalid_qr_payload": gettext("This QR code is not a valid gift card. Ask for a fresh one."),
        "err_card_expired": gettext("This card has expired."),
        "err_card_blocked": gettext("This card is blocked."),
        "err_card_deactivated": gettext("This card is no longer valid."),
        "err_card_not_active": gettext("This card has not been activated yet."),
        "err_insufficient_funds": gettext("Not enough on the card: it holds {balance}."),
        "take_what_is_there": gettext("Take {balance} now"),
        "err_store_limit_exceeded": gettext("Above this terminal's limit of {limit}: a manager must do it."),
        "err_manager_required": gettext("Only a manager terminal may do this."),
        "err_refund_not_allowed": gettext("This redemption was made at another store."),
        "err_refund_exceeds_redemption": gettext("This redemption has already been refunded."),
        "err_rate_limited": gettext("Too many wrong codes. Wait {seconds} seconds."),
        "err_unauthenticated": gettext("This terminal is no longer enrolled. Enrol it again."),
        "err_invalid_enrollment_code": gettext("That code is wrong, used or expired. Ask for a new one."),
        "err_currency_mismatch": gettext("The card is in another currency."),
        "err_network": gettext("No connection. Tap again: the same request is retried, never charged twice."),
        "err_other": gettext("Something went wrong ({code})."),
    }


def register(api: Api) -> None:
    route = Operations(api, tag="pages")

    @route.get("/terminal", answer=TEXT, uses_db=False, media_type="text/html")
    async def terminal_page(call: Call) -> Result:
        """The store terminal page"""
        return render(call.request, "terminal.html", messages=_messages(translations(call.request)))

    @route.get(
        "/v1/terminal/cards/{card_id}/thumbnail.png",
        auth=("terminal", "api_key"),
        tag="terminal",
        answer=TEXT,
        media_type="image/png",
    )
    async def terminal_card_thumbnail(call: Call) -> Result:
        """A card's design as a small picture, for the terminal page"""
        if not ids.is_id(call.path["card_id"], "card"):
            raise DomainError("card_not_found", "no such card")
        card = await cards.get(call.conn, call.merchant_id, call.path["card_id"])
        design = await designs.fetch(call.conn, call.merchant_id, card.design_id) if card.design_id else None
        cover = (
            await images.data_of(call.conn, call.merchant_id, design["cover_image_id"]) if design else None
        )
        art = designs.art(design, amount=card.initial_amount, currency=card.currency, cover=cover)
        png = await asyncio.to_thread(card_art.render_png, art, width=THUMBNAIL_WIDTH)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})
