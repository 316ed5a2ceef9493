"""The wallet page a session link opens (/w/{token}), the card and gift pictures it shows, and its script
and style.

The page is a shell: the script reads everything from the wallet API (api_wallet) with the link's token as
its Bearer credential and builds the lists with DOM text nodes, never markup. Under the strict CSP of
`templating` it carries no inline script or style; its labels travel as a JSON data block. A link that is
unknown, revoked or expired gets one friendly page.
"""

from __future__ import annotations

from gettext import NullTranslations

from giftcards.core.errors import DomainError
from giftcards.wallet import gifts as wallet_gifts
from giftcards.wallet import holders as wallet
from giftcards.web.api.gifts import png
from giftcards.web.calls import TEXT, Call, Operations, Result
from giftcards.web.routing import Api
from giftcards.web.templating import render, translations

THUMBNAIL_WIDTH = 240


def _texts(catalog: NullTranslations) -> dict[str, str]:
    """The texts the script shows, by key, in the page's language."""
    gettext = catalog.gettext
    return {
        "title": gettext("My cards"),
        "invalid": gettext(
            "This wallet link is not valid or has expired. Open your wallet again from the shop."
        ),
        "expired": gettext("This wallet link has expired. Open your wallet again from the shop."),
        "total": gettext("You can spend"),
        "nothing_to_spend": gettext("Nothing to spend yet."),
        "all": gettext("All"),
        "active": gettext("Active"),
        "used_up": gettext("Used up"),
        "expired_tab": gettext("Expired"),
        "deactivated": gettext("Cancelled"),
        "blocked": gettext("Blocked"),
        "pending": gettext("Not active yet"),
        "no_cards": gettext("No cards here."),
        "more": gettext("Show more"),
        "expires": gettext("Valid until"),
        "no_expiry": gettext("No expiry"),
        "from": gettext("From"),
        "to": gettext("To"),
        "of": gettext("of"),
        "open": gettext("Open & pay"),
        "details": gettext("Details"),
        "send_gift": gettext("Give as a gift"),
        "add_wechat": gettext("Add to WeChat"),
        "waiting_title": gettext("Gifts for you"),
        "claim": gettext("Accept the gift"),
        "claimed_notice": gettext("The card is yours now."),
        "opens_at": gettext("Opens at"),
        "claim_by": gettext("Accept by"),
        "sent_title": gettext("Gifts you sent"),
        "no_sent": gettext("You have not sent any gifts yet."),
        "gift_scheduled": gettext("Scheduled"),
        "gift_waiting": gettext("Waiting to be accepted"),
        "gift_claimed": gettext("Accepted"),
        "gift_revoked": gettext("Withdrawn"),
        "gift_returned": gettext("Returned to you"),
        "revoke": gettext("Withdraw"),
        "revoke_confirm": gettext("Tap again to withdraw"),
        "share": gettext("Share the link"),
        "send_title": gettext("Give this card as a gift"),
        "recipient_name": gettext("Recipient's name"),
        "sender_name": gettext("Your name"),
        "message": gettext("Message"),
        "send": gettext("Send"),
        "cancel": gettext("Cancel"),
        "share_title": gettext("Share this link with the recipient:"),
        "copy": gettext("Copy"),
        "copied": gettext("Copied"),
        "close": gettext("Close"),
        "error": gettext("Something went wrong:"),
    }


def register(api: Api) -> None:
    route = Operations(api, tag="pages")
    picture = {"media_type": "image/png", "responses": {200: {"type": "string", "format": "binary"}}}

    @route.get("/w/{token}", responses={200: TEXT, 404: TEXT}, media_type="text/html")
    async def wallet_page(call: Call) -> Result:
        """The wallet page a session link opens"""
        token = call.path["token"]
        try:
            holder = await wallet.resolve(call.conn, call.keyring, token)
        except DomainError:
            return render(call.request, "wallet.html", status=404, invalid=True)
        texts = _texts(translations(call.request))
        return render(call.request, "wallet.html", texts=texts, invalid=False, token=token, holder=holder)

    @route.get("/w/{token}/cards/{card_id}.png", **picture)
    async def wallet_card_picture(call: Call) -> Result:
        """A held card's picture"""
        holder = await _holder(call)
        art = await wallet.card_picture(call.conn, holder, call.path["card_id"])
        return await png(art, width=THUMBNAIL_WIDTH, cache="private, max-age=300")

    @route.get("/w/{token}/gifts/{gift_id}.png", **picture)
    async def wallet_gift_picture(call: Call) -> Result:
        """The picture of a gift sent, or of an open one waiting for the wallet's owner"""
        holder = await _holder(call)
        art = await wallet_gifts.picture(call.conn, holder, call.path["gift_id"])
        return await png(art, width=THUMBNAIL_WIDTH, cache="private, max-age=300")


async def _holder(call: Call) -> wallet.Holder:
    """The session a picture's path names; a bad one is a missing picture (its path is no Bearer)."""
    try:
        return await wallet.resolve(call.conn, call.keyring, call.path["token"])
    except DomainError:
        raise DomainError("not_found") from None
