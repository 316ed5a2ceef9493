"""Our cards as WeChat cards: a design becomes a GIFT_CARD definition and a card's code is deposited into
it (one card, or a batch 100 codes per call); add_card.py then puts it into a user's wallet.

A WeChat card in deposit mode is created with stock 0; each code is deposited (at most 100 per call) and
the stock raised after it. WeChat refuses stock above the unassigned deposited codes (40136), which makes
the deposit safe to repeat after a lost answer: a second raise is refused, never double counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import asyncpg

from giftcards.core.errors import DomainError, ValidationError, found
from giftcards.core.isotime import iso
from giftcards.core.sealing import Keyring
from giftcards.db import leases
from giftcards.db.pool import Connect
from giftcards.value import cards, codes
from giftcards.wechat.client import WeChat, WeChatFailure

DEFAULT_DESIGN = "default"
DEPOSIT_MODE = "GET_CUSTOM_CODE_MODE_DEPOSIT"
MAX_CODES_PER_DEPOSIT = 100
STOCK_ABOVE_POOL = 40136  # "invalid use DepositCodeMode": the stock already covers every pooled code
WECHAT_CURRENCY = "CNY"  # the wallet shows fen; WeChat has no other currency


def card_definition(presentation: dict[str, Any]) -> dict[str, Any]:
    """The card/create payload for a deposit-mode gift card showing `presentation`."""
    base_info = {
        "logo_url": presentation["logo_url"],
        "brand_name": presentation["brand_name"],
        "code_type": presentation.get("code_type", "CODE_TYPE_QRCODE"),
        "title": presentation["title"],
        "color": presentation.get("color", "Color010"),
        "notice": presentation.get("notice", "结账时出示此码"),
        "description": presentation.get("description", "储值礼品卡"),
        "date_info": {"type": "DATE_TYPE_PERMANENT"},  # our own expiry makes the code unavailable
        "sku": {"quantity": 0},
        "use_custom_code": True,
        "get_custom_code_mode": DEPOSIT_MODE,
        "can_give_friend": presentation.get("can_give_friend", True),
    }
    if presentation.get("service_phone"):
        base_info["service_phone"] = presentation["service_phone"]
    return {
        "card": {
            "card_type": "GENERAL_CARD",
            "general_card": {"sub_card_type": "GIFT_CARD", "supply_balance": True, "base_info": base_info},
        }
    }


TEXT_LIMITS = {"title": 27, "brand_name": 36}  # bytes of UTF-8 ("9个汉字", "12个汉字")


async def presentation_for(
    conn: asyncpg.Connection, merchant_id: str, design_key: str, given: dict[str, Any]
) -> dict[str, Any]:
    """What the WeChat card shows: the given fields, with the design's name and the merchant's as defaults."""
    if design_key == DEFAULT_DESIGN:
        name = None
    else:
        name = await conn.fetchval(
            "SELECT name FROM designs WHERE merchant_id = $1 AND id = $2", merchant_id, design_key
        )
        if name is None:
            raise DomainError("design_not_found", "no such design")
    merchant = await conn.fetchval("SELECT name FROM merchants WHERE id = $1", merchant_id)
    presentation = {"title": name or "礼品卡", "brand_name": merchant, **given}
    errors = [
        {"field": key, "message": f"must be at most {limit} bytes of UTF-8 (WeChat's limit)"}
        for key, limit in TEXT_LIMITS.items()
        if len(str(presentation[key]).encode()) > limit
    ]
    if errors:
        raise ValidationError(errors)
    return presentation


# The functions below call WeChat, so they take `connect` (a connection for each short step) rather than
# a connection: none is held, and no transaction is open, while WeChat answers. What must happen once (a
# design's card/create, a card's deposit) happens under a lease, which a concurrent call waits for until
# its own deadline and then finds done.


async def sync_design(
    connect: Connect, wechat: WeChat, merchant_id: str, design_key: str, given: dict[str, Any]
) -> tuple[bool, dict[str, Any]]:
    """The WeChat card of a design (created on first call, showing `given` over the defaults). Returns
    (created, view)."""
    async with connect() as conn:
        definition = card_definition(await presentation_for(conn, merchant_id, design_key, given))

    async def existing(conn: asyncpg.Connection) -> asyncpg.Record | None:
        return await _wechat_card(conn, merchant_id, design_key)

    async def create(deadline: float) -> asyncpg.Record:
        wechat_card_id = await wechat.call(lambda client: client.card.create(definition), deadline=deadline)
        async with connect() as conn:
            row = await conn.fetchrow(
                """INSERT INTO wechat_cards (merchant_id, design_key, wechat_card_id, title)
                   VALUES ($1, $2, $3, $4) ON CONFLICT (merchant_id, design_key) DO NOTHING RETURNING *""",
                merchant_id,
                design_key,
                wechat_card_id,
                definition["card"]["general_card"]["base_info"]["title"],
            )
            # None: a lease that lapsed let another call create one too; the first one stays the design's.
            return row or await existing(conn)

    created, row = await _once(connect, wechat, merchant_id, f"wechat-card:{design_key}", existing, create)
    return created, wechat_card_view(row)


async def list_designs(conn: asyncpg.Connection, merchant_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM wechat_cards WHERE merchant_id = $1 ORDER BY created_at, design_key", merchant_id
    )
    return [wechat_card_view(row) for row in rows]


async def sync_code(
    connect: Connect, wechat: WeChat, keyring: Keyring, merchant_id: str, card_id: str
) -> dict[str, Any]:
    """Deposit the card's code into its WeChat card and raise the stock; nothing to do when done before."""

    async def existing(conn: asyncpg.Connection) -> asyncpg.Record | None:
        return await code_row(conn, merchant_id, card_id)

    async def deposit(deadline: float) -> asyncpg.Record:
        async with connect() as conn:
            card = found(
                await conn.fetchrow(
                    "SELECT id, state, currency, design_id FROM cards WHERE merchant_id = $1 AND id = $2",
                    merchant_id,
                    card_id,
                ),
                "card",
                "card_not_found",
            )
            if card["currency"] != WECHAT_CURRENCY:
                raise DomainError(
                    "wechat_currency_unsupported", "WeChat's card wallet shows CNY balances only"
                )
            if card["state"] in ("deactivated", "expired"):
                raise DomainError(f"card_{card['state']}", f"the card is {card['state']}")
            wechat_card_id = await _target(conn, merchant_id, card["design_id"])
            code = codes.normalize_code(await cards.reveal_code(conn, keyring, merchant_id, card_id))
        await wechat.call(lambda client: deposit_codes(client, wechat_card_id, [code]), deadline=deadline)
        async with connect() as conn:
            row = await conn.fetchrow(
                """INSERT INTO wechat_card_codes (merchant_id, card_id, wechat_card_id, code_hash,
                                                  code_sealed, wallet_state)
                   VALUES ($1, $2, $3, $4, $5, 'deposited') ON CONFLICT (merchant_id, card_id) DO NOTHING
                   RETURNING *""",
                merchant_id,
                card_id,
                wechat_card_id,
                code_hash(keyring, code),
                seal_code(keyring, merchant_id, card_id, code),
            )
            return row or await existing(conn)  # None: deposited meanwhile under a lapsed lease

    _, row = await _once(connect, wechat, merchant_id, f"wechat-code:{card_id}", existing, deposit)
    return wallet_view(row)


async def sync_batch(
    connect: Connect,
    wechat: WeChat,
    keyring: Keyring,
    merchant_id: str,
    batch_id: str,
    *,
    limit: int,
) -> dict[str, Any]:
    """Deposit up to `limit` not yet deposited codes of a batch, 100 per WeChat call; call again while
    `remaining` is not zero (a sync also stops early, when half its deadline is gone). One sync of a
    batch at a time (a lease, renewed per call)."""
    async with connect() as conn:
        batch = await conn.fetchrow(
            "SELECT currency FROM card_batches WHERE merchant_id = $1 AND id = $2", merchant_id, batch_id
        )
    if found(batch, "card batch")["currency"] != WECHAT_CURRENCY:
        raise DomainError("wechat_currency_unsupported", "WeChat's card wallet shows CNY balances only")
    deadline = wechat.deadline()
    loop = asyncio.get_running_loop()
    synced = 0
    lease_name = f"wechat-batch:{batch_id}"
    with wechat_problems():
        async with (
            wechat.turn(deadline),
            leases.held(
                connect, merchant_id, lease_name, seconds=wechat.lease_seconds, until=deadline
            ) as lease,
        ):
            # No next chunk once half the deadline is gone: the answer says what is left, for the next call.
            while synced < limit and loop.time() < deadline - wechat.timeout / 2:
                if not await lease.renew():
                    raise DomainError("wechat_unavailable", "another sync of this batch took over; retry")
                size = min(MAX_CODES_PER_DEPOSIT, limit - synced)
                done = await _deposit_chunk(connect, wechat, keyring, merchant_id, batch_id, size, deadline)
                if not done:
                    break
                synced += done
    async with connect() as conn:
        remaining = await conn.fetchval(_UNDEPOSITED_COUNT, merchant_id, batch_id)
    return {"object": "wechat_batch_sync", "batch": batch_id, "synced": synced, "remaining": remaining}


_UNDEPOSITED = """
SELECT c.id, c.design_id FROM cards c
 WHERE c.merchant_id = $1 AND c.batch_id = $2 AND c.state NOT IN ('deactivated', 'expired')
   AND NOT EXISTS (SELECT 1 FROM wechat_card_codes w
                    WHERE w.merchant_id = c.merchant_id AND w.card_id = c.id)
 ORDER BY c.id LIMIT $3"""
_UNDEPOSITED_COUNT = """
SELECT count(*) FROM cards c
 WHERE c.merchant_id = $1 AND c.batch_id = $2 AND c.state NOT IN ('deactivated', 'expired')
   AND NOT EXISTS (SELECT 1 FROM wechat_card_codes w
                    WHERE w.merchant_id = c.merchant_id AND w.card_id = c.id)"""


async def _deposit_chunk(
    connect: Connect,
    wechat: WeChat,
    keyring: Keyring,
    merchant_id: str,
    batch_id: str,
    size: int,
    deadline: float,
) -> int:
    """One deposit call for up to `size` cards of one batch (one design, so one WeChat card), then their
    rows. Returns how many went in (0: none left)."""
    async with connect() as conn:
        rows = await conn.fetch(_UNDEPOSITED, merchant_id, batch_id, size)
        if not rows:
            return 0
        wechat_card_id = await _target(conn, merchant_id, rows[0]["design_id"])
        chunk = [
            (row["id"], codes.normalize_code(await cards.reveal_code(conn, keyring, merchant_id, row["id"])))
            for row in rows
        ]
    deposit = [code for _, code in chunk]
    await wechat.call(lambda client: deposit_codes(client, wechat_card_id, deposit), deadline=deadline)
    async with connect() as conn:
        await conn.executemany(
            """INSERT INTO wechat_card_codes (merchant_id, card_id, wechat_card_id, code_hash, code_sealed,
                                              wallet_state)
               VALUES ($1, $2, $3, $4, $5, 'deposited') ON CONFLICT DO NOTHING""",
            [
                (
                    merchant_id,
                    card_id,
                    wechat_card_id,
                    code_hash(keyring, code),
                    seal_code(keyring, merchant_id, card_id, code),
                )
                for card_id, code in chunk
            ],
        )
    return len(chunk)


async def _target(conn: asyncpg.Connection, merchant_id: str, design_id: str | None) -> str:
    """The WeChat card a card of this design is deposited into: the design's, else the default one."""
    target = await _wechat_card(conn, merchant_id, design_id or DEFAULT_DESIGN)
    if target is None and design_id:
        target = await _wechat_card(conn, merchant_id, DEFAULT_DESIGN)
    if target is None:
        raise DomainError(
            "wechat_card_not_synced", "sync the card's design (or the default design) to WeChat first"
        )
    return str(target["wechat_card_id"])


async def _once(
    connect: Connect,
    wechat: WeChat,
    merchant_id: str,
    name: str,
    existing: Callable[[asyncpg.Connection], Awaitable[asyncpg.Record | None]],
    make: Callable[[float], Awaitable[asyncpg.Record]],
) -> tuple[bool, asyncpg.Record]:
    """leases.once for WeChat work: what exists is answered at once; otherwise the lease is waited for in
    one of the merchant's turns, and the wait, the token and the call share one deadline."""
    async with connect() as conn:
        found = await existing(conn)
    if found is not None:
        return False, found
    deadline = wechat.deadline()
    with wechat_problems():
        async with wechat.turn(deadline):
            return await leases.once(
                connect,
                merchant_id,
                name,
                seconds=wechat.lease_seconds,
                until=deadline,
                existing=existing,
                make=lambda: make(deadline),
            )


@contextlib.contextmanager
def wechat_problems() -> Iterator[None]:
    """WeChat work in a back-office or page request: a failure becomes a problem the caller can act on."""
    try:
        yield
    except leases.Busy:
        raise DomainError(
            "wechat_unavailable", "another request is making the same WeChat call and is not done; retry"
        ) from None
    except WeChatFailure as failure:
        if failure.transient:
            raise DomainError(
                "wechat_unavailable", f"WeChat did not answer usefully: {failure.detail}"
            ) from None
        raise DomainError(
            "wechat_refused", f"WeChat refused the call: {failure.detail}", errcode=failure.errcode
        ) from None


def deposit_codes(client: Any, wechat_card_id: str, all_codes: Iterable[str]) -> int:
    """In the worker thread: deposit (<= 100 per call), then raise the stock by what went in."""
    pending = list(all_codes)
    deposited = 0
    for start in range(0, len(pending), MAX_CODES_PER_DEPOSIT):
        chunk = pending[start : start + MAX_CODES_PER_DEPOSIT]
        answer = client.card.deposit_code(wechat_card_id, chunk)
        failed = answer.get("fail_code") or []
        if failed:
            raise WeChatFailure("errcode", f"WeChat refused {len(failed)} code(s) on deposit")
        deposited += len(chunk)  # succ_code and duplicate_code (deposited before an answer got lost)
    try:
        client.card.modify_stock(wechat_card_id, deposited)
    except Exception as exc:
        if getattr(exc, "errcode", None) != STOCK_ABOVE_POOL:
            raise
    return deposited


async def _wechat_card(conn: asyncpg.Connection, merchant_id: str, design_key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM wechat_cards WHERE merchant_id = $1 AND design_key = $2", merchant_id, design_key
    )


async def code_row(conn: asyncpg.Connection, merchant_id: str, card_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM wechat_card_codes WHERE merchant_id = $1 AND card_id = $2", merchant_id, card_id
    )


def seal_code(keyring: Keyring, merchant_id: str, card_id: str, code: str) -> bytes:
    return keyring.box.seal(code.encode(), context=f"wechat-code:{merchant_id}:{card_id}".encode())


def open_code(keyring: Keyring, merchant_id: str, card_id: str, sealed: bytes) -> str:
    return keyring.box.open(bytes(sealed), context=f"wechat-code:{merchant_id}:{card_id}".encode()).decode()


def code_hash(keyring: Keyring, code: str) -> bytes:
    """How a WeChat code is found again from an event (the same keyed hash as card codes use); a code
    WeChat made up on gifting is not one of ours and is hashed as it is."""
    return cards.typed_code_hash(keyring, code) or keyring.code_hash(code)


def wechat_card_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "object": "wechat_card",
        "design": row["design_key"],
        "wechat_card_id": row["wechat_card_id"],
        "title": row["title"],
        "created_at": iso(row["created_at"]),
    }


def wallet_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "object": "wechat_wallet_card",
        "card": row["card_id"],
        "wechat_card_id": row["wechat_card_id"],
        "wallet_state": row["wallet_state"],
        "openid": row["openid"],
        "deposited_at": iso(row["deposited_at"]),
        "updated_at": iso(row["updated_at"]),
    }
