"""The domain layer called directly, with a connection and no server: a shop, its cards, its redemptions,
and what the ledger holds afterwards."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from giftcards.core.errors import DomainError
from giftcards.core.idempotency import Outcome, request_fingerprint
from giftcards.core.sealing import Keyring
from giftcards.gifting import designs, gifts
from giftcards.gifting.designs import DesignSpec
from giftcards.gifting.gifts import GiftDetails, Purchase
from giftcards.qr.keys import QrKeys
from giftcards.stores import terminals
from giftcards.stores.merchants import Principal, create_merchant
from giftcards.value import redemption
from giftcards.value.cards import CardSpec, issue
from tests.support.api import MASTER_KEY

KEYRING = Keyring(MASTER_KEY)


def answer(shape: Any) -> dict[str, Any]:
    """A domain answer (a msgspec Struct) as the JSON object a client gets."""
    return msgspec.to_builtins(shape)  # type: ignore[no-any-return]


PUBLIC_URL = "https://gifts.example"


@dataclass(frozen=True)
class Shop:
    """A merchant as its API key sees it: the principal the domain takes and the key's secret."""

    principal: Principal
    api_key: str

    @property
    def id(self) -> str:
        return self.principal.merchant_id


async def new_shop(db: asyncpg.Connection, name: str = "Maison Lumière") -> Shop:
    merchant = await create_merchant(db, KEYRING, name=name)
    key = merchant.api_key
    return Shop(Principal("api_key", key.id, merchant.id), str(key.secret))


async def new_card(db: asyncpg.Connection, shop: Shop, amount: int = 10_000, **spec: Any) -> dict[str, Any]:
    return answer(await issue(db, KEYRING, shop.principal, CardSpec(amount=amount, **spec)))


async def new_till(
    db: asyncpg.Connection, shop: Shop, role: str = "clerk", *, store_id: str | None = None, **store: Any
) -> str:
    """The token of a till enrolled in `store_id`, or in a new store of the shop made of `store`."""
    if store_id is None:
        store_id = (await terminals.create_store(db, shop.id, name="Jing'an", **store)).id
    till = await terminals.create_terminal(
        db, KEYRING, shop.id, store_id=store_id, label="Till 1", role=role, api_key_id=shop.principal.id
    )
    enrolled = await terminals.enroll(db, KEYRING, till.enrollment.code, client=None)  # type: ignore[union-attr]
    return str(enrolled.token)


async def redeem(
    db: asyncpg.Connection, token: str, body: dict[str, Any], *, key: str | None = None
) -> tuple[int, dict[str, Any]]:
    """A redemption through the one statement every redemption takes: its status and answer body.
    `token` is an API key's secret or a till's token; a refusal comes back as its problem code."""
    kind = "terminal" if token.startswith(terminals.TOKEN_PREFIX + "_") else "api_key"
    prepared = await redemption.prepare(
        KEYRING,
        QrKeys(KEYRING),  # only a QR payload needs the keys; these tests name cards by code
        _no_connection,
        token_kind=kind,
        token=token,
        client=None,
        key=key,
        fingerprint=request_fingerprint("POST", "/v1/redemptions", body),
        body=body,
    )
    (answer,) = await redemption.redeem_many(db, [prepared])
    if isinstance(answer, DomainError):
        return answer.status, {"code": answer.code, **answer.extra}
    assert isinstance(answer, Outcome)
    return answer.status, {**json.loads(answer.body), "replayed": answer.replayed}


def _no_connection() -> Any:
    raise AssertionError("a redemption by code needs no connection of its own")


async def history(db: asyncpg.Connection, card_id: str) -> list[tuple[str, int, int]]:
    """The card's ledger, oldest first: (kind, amount, balance after)."""
    rows = await db.fetch(
        "SELECT kind, amount, balance_after FROM ledger_entries WHERE card_id = $1 ORDER BY id", card_id
    )
    return [(r["kind"], r["amount"], r["balance_after"]) for r in rows]


async def balance(db: asyncpg.Connection, card_id: str) -> int:
    return int(await db.fetchval("SELECT balance FROM cards WHERE id = $1", card_id))


async def new_design(db: asyncpg.Connection, shop: Shop, **spec: Any) -> dict[str, Any]:
    """A Qixi design of 520.00 CNY cards unless `spec` says otherwise."""
    fields = {"name": "七夕 Qixi", "occasion": "qixi", "denominations": (52000,), **spec}
    return answer(await designs.create(db, shop.id, DesignSpec(**fields)))


async def new_gift(
    db: asyncpg.Connection,
    shop: Shop,
    gifter: str,
    *,
    design_id: str | None = None,
    amount: int = 52000,
    **details: Any,
) -> dict[str, Any]:
    """A gift bought for `gifter` (of a new Qixi design unless `design_id` says): the answer with its link."""
    order = Purchase(
        design_id=design_id or (await new_design(db, shop))["id"],
        amount=amount,
        gifter_id=gifter,
        details=GiftDetails(sender_name="小明", recipient_name="小红", **details),
    )
    return answer(await gifts.purchase(db, KEYRING, shop.principal, order, public_url=PUBLIC_URL))


async def owner_of(db: asyncpg.Connection, card_id: str) -> str | None:
    return await db.fetchval("SELECT owner_id FROM cards WHERE id = $1", card_id)  # type: ignore[no-any-return]
