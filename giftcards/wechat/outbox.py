"""The WeChat outbox: what each wallet card must end up showing, delivered in order per card.

Rows are written by the database itself (trigger `wechat_outbox_feed`, schema/0005) in the transaction
that posts the ledger entry, so no path that moves money can forget WeChat, and a redemption never waits
for it. The delivery worker takes, for each card, only its oldest open message (`FOR UPDATE SKIP LOCKED`,
so several workers share the work and never deliver one card out of order), calls WeChat, and records
the outcome. A failure backs off exponentially with jitter; a message that keeps failing is parked,
and holds back the card's later messages until the back office replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from giftcards.db.pool import is_unavailable
from giftcards.secrets_box import Keyring
from giftcards.wechat import accounts
from giftcards.wechat.cards import open_code
from giftcards.wechat.client import DEFAULT_TIMEOUT, WeChat, WeChatFailure

log = logging.getLogger("giftcards.wechat.outbox")

CODE_CONSUMED = 40099
USER_CARD_STATUS = 40127  # deleted or unavailable in WeChat
_WALLET_STATES = ("in_wallet", "gifting")
_RECORD = {"redeem": "消费", "refund": "退款", "load": "充值", "adjust": "调整"}

_NEXT = """
SELECT o.* FROM wechat_outbox o
 WHERE o.state = 'pending' AND o.next_attempt_at <= now()
   AND NOT (o.merchant_id = ANY($1::text[])) AND NOT (o.id = ANY($2::bigint[]))
   AND NOT EXISTS (SELECT 1 FROM wechat_outbox earlier
                    WHERE earlier.merchant_id = o.merchant_id AND earlier.card_id = o.card_id
                      AND earlier.state IN ('pending', 'parked') AND earlier.id < o.id)
 ORDER BY o.id
 LIMIT 1
 FOR UPDATE OF o SKIP LOCKED
"""


@dataclass(frozen=True)
class Policy:
    base_delay: float = 2.0  # seconds before the first retry; doubles per attempt
    max_delay: float = 300.0
    max_attempts: int = 5  # WeChat refused it (an errcode that retrying will not change): park after this
    max_transient_attempts: int = 60  # WeChat unreachable, busy or rate limiting: about four hours
    lanes: int = 4  # messages in flight at once, each on its own connection (see deliver_pass)
    pass_limit: int = 500  # messages per pass, so that one pass's bookkeeping stays small
    poll_interval: float = 0.5
    timeout: float = DEFAULT_TIMEOUT

    def backoff(self, attempts: int) -> float:
        """Exponential, capped, with "equal jitter": half fixed, half random, so retries spread out."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(0, attempts - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class PassReport:
    delivered: int = 0
    failed: int = 0
    parked: int = 0
    skipped: int = 0
    unreachable: set[str] = field(default_factory=set)  # merchants whose WeChat did not answer

    @property
    def handled(self) -> int:
        return self.delivered + self.failed + self.parked + self.skipped


def money(amount: int) -> str:
    return f"¥{amount // 100}.{amount % 100:02d}"


def record_text(entry_kind: str, amount: int, balance: int) -> str:
    """The line WeChat shows with the new balance, e.g. "消费 ¥12.00"."""
    if entry_kind == "expire":
        return "已过期"
    if entry_kind == "deactivate":
        return "已停用"
    if entry_kind == "sync":
        return f"当前余额 {money(balance)}"
    sign = ("+" if amount > 0 else "-") if entry_kind == "adjust" else ""
    return f"{_RECORD[entry_kind]} {sign}{money(abs(amount))}"


async def deliver_pass(pool: asyncpg.Pool, keyring: Keyring, policy: Policy | None = None) -> PassReport:
    """Deliver every message that is due, each at most once, in order per card. Returns what happened."""
    policy = policy or Policy()
    report = PassReport()
    attempted: list[int] = []
    clients: dict[str, WeChat | None] = {}

    async def lane() -> None:
        async with pool.acquire() as conn:
            while len(attempted) < policy.pass_limit:
                async with conn.transaction():
                    row = await conn.fetchrow(_NEXT, list(report.unreachable), attempted)
                    if row is None:
                        return
                    attempted.append(row["id"])
                    await _deliver(conn, pool, keyring, policy, clients, row, report)

    # A lane holds a connection (and its message's row lock) while WeChat answers, and a token refresh
    # takes one more: at most half the pool, so requests always find connections and lanes never wait
    # on each other for the last one.
    lanes = max(1, min(policy.lanes, pool.get_max_size() // 4))
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return report


async def _deliver(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    keyring: Keyring,
    policy: Policy,
    clients: dict[str, WeChat | None],
    row: asyncpg.Record,
    report: PassReport,
) -> None:
    merchant_id, card_id = row["merchant_id"], row["card_id"]
    # No lock on the wallet row: a callback holding the card lock must never wait for WeChat through us.
    wallet = await conn.fetchrow(
        "SELECT * FROM wechat_card_codes WHERE merchant_id = $1 AND card_id = $2", merchant_id, card_id
    )
    if wallet is not None and wallet["wallet_state"] == "consumed" and row["balance"] > 0:
        await _consumed_with_balance(conn, row)
        report.skipped += 1
        return
    if wallet is None or wallet["wallet_state"] not in _WALLET_STATES:
        state = wallet["wallet_state"] if wallet is not None else "not deposited"
        await _finish(conn, row, "skipped", note=f"not in a wallet ({state})")
        report.skipped += 1
        return
    if merchant_id not in clients:
        account = await accounts.find(conn, keyring, merchant_id)
        clients[merchant_id] = WeChat(pool, keyring, account, timeout=policy.timeout) if account else None
    wechat = clients[merchant_id]
    try:
        if wechat is None:
            raise WeChatFailure("errcode", "WeChat is not set up for this merchant")
        code = open_code(keyring, merchant_id, card_id, wallet["code_sealed"])
        outcome = await wechat.call(lambda client: _apply(client, row, wallet["wechat_card_id"], code))
    except WeChatFailure as failure:
        if failure.kind == "transport":
            report.unreachable.add(merchant_id)  # leave its other messages alone this pass
        await _failed(conn, policy, row, failure, report)
        return
    except Exception as exc:
        if is_unavailable(exc) or isinstance(exc, asyncpg.PostgresError):
            raise  # the transaction is gone: the message stays as it was, for the next pass
        # A bug or a sealed value that no longer opens: retrying cannot help forever, so park it in
        # view of the back office instead of failing the whole pass again and again.
        log.exception("wechat outbox delivery broke", extra={"merchant": merchant_id, "card": card_id})
        await _failed(
            conn, policy, row, WeChatFailure("internal", f"internal error ({type(exc).__name__})"), report
        )
        return
    if outcome == "consumed_elsewhere":
        await _set_wallet(conn, merchant_id, card_id, "consumed")
        await _consumed_with_balance(conn, row)
        report.skipped += 1
        return
    if row["finish"] is not None:
        await _set_wallet(
            conn, merchant_id, card_id, "consumed" if row["finish"] == "consume" else "unavailable"
        )
    await _finish(conn, row, "delivered")
    report.delivered += 1


def _apply(client: Any, row: asyncpg.Record, wechat_card_id: str, code: str) -> str:
    """In the worker thread: set the absolute balance (safe to repeat), then consume or disable."""
    try:
        client.card._post(
            "card/generalcard/updateuser",
            data={
                "card_id": wechat_card_id,
                "code": code,
                "balance": row["balance"],
                "record_balance": record_text(row["entry_kind"], row["amount"], row["balance"]),
            },
        )
    except Exception as exc:
        errcode = getattr(exc, "errcode", None)
        if errcode in (CODE_CONSUMED, USER_CARD_STATUS) and row["finish"] is not None and row["balance"] == 0:
            return "done"  # a repeat after a lost answer: the code is already out of use, as wanted
        if errcode != CODE_CONSUMED:
            raise
        return "consumed_elsewhere"
    try:
        if row["finish"] == "consume":
            client.card.consume_code(code, wechat_card_id)
        elif row["finish"] == "unavailable":
            reason = "已过期" if row["entry_kind"] == "expire" else "已停用"
            client.card._post(
                "card/code/unavailable", data={"card_id": wechat_card_id, "code": code, "reason": reason}
            )
    except Exception as exc:
        # Consumed or already unavailable: the code is out of use either way, which is what we wanted.
        if getattr(exc, "errcode", None) not in (CODE_CONSUMED, USER_CARD_STATUS):
            raise
    return "done"


async def _failed(
    conn: asyncpg.Connection, policy: Policy, row: asyncpg.Record, failure: WeChatFailure, report: PassReport
) -> None:
    attempts = row["attempts"] + 1
    limit = policy.max_transient_attempts if failure.transient else policy.max_attempts
    fields = {
        "merchant": row["merchant_id"],
        "card": row["card_id"],
        "outbox_message": row["id"],
        "attempts": attempts,
    }
    if attempts >= limit:
        await conn.execute(
            """UPDATE wechat_outbox SET state = 'parked', attempts = $3, last_error = $4, parked_at = now()
                WHERE merchant_id = $1 AND id = $2""",
            row["merchant_id"],
            row["id"],
            attempts,
            failure.detail,
        )
        log.warning("wechat outbox message parked: %s", failure.detail, extra=fields)
        report.parked += 1
        return
    delay = policy.backoff(attempts)
    await conn.execute(
        """UPDATE wechat_outbox
              SET attempts = $3, last_error = $4, next_attempt_at = now() + make_interval(secs => $5)
            WHERE merchant_id = $1 AND id = $2""",
        row["merchant_id"],
        row["id"],
        attempts,
        failure.detail,
        delay,
    )
    log.info("wechat outbox delivery failed, retrying in %.1f s: %s", delay, failure.detail, extra=fields)
    report.failed += 1


async def _finish(
    conn: asyncpg.Connection, row: asyncpg.Record, state: str, *, note: str | None = None
) -> None:
    await conn.execute(
        """UPDATE wechat_outbox SET state = $3, attempts = attempts + 1, delivered_at = now(),
                  last_error = coalesce($4, last_error)
            WHERE merchant_id = $1 AND id = $2""",
        row["merchant_id"],
        row["id"],
        state,
        note,
    )


async def _consumed_with_balance(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    """WeChat consumed the code (the user did, or we did at an earlier zero balance) and takes no more
    updates, so the wallet cannot show this balance. Money is untouched; the back office is told."""
    if row["balance"] > 0:
        await conn.execute(
            """INSERT INTO wechat_discrepancies (merchant_id, card_id, kind, balance, detail)
               VALUES ($1, $2, 'wallet_update_refused_consumed', $3, $4)""",
            row["merchant_id"],
            row["card_id"],
            row["balance"],
            f"the wallet cannot show {money(row['balance'])}: the code is consumed in WeChat",
        )
    await _finish(conn, row, "skipped", note="the code is consumed in WeChat")


async def _set_wallet(conn: asyncpg.Connection, merchant_id: str, card_id: str, state: str) -> None:
    await conn.execute(
        """UPDATE wechat_card_codes SET wallet_state = $3, updated_at = now()
            WHERE merchant_id = $1 AND card_id = $2 AND wallet_state IN ('in_wallet', 'gifting')""",
        merchant_id,
        card_id,
        state,
    )


async def enqueue_resync(conn: asyncpg.Connection, merchant_id: str, card_id: str) -> None:
    """The card's whole state, for a card that just entered a wallet. Locks the card row first, so no
    ledger entry can slip between the balance read here and the message's place in the card's order."""
    card = await conn.fetchrow(
        "SELECT balance, state, currency FROM cards WHERE merchant_id = $1 AND id = $2 FOR UPDATE",
        merchant_id,
        card_id,
    )
    finish = None
    if card["state"] in ("deactivated", "expired"):
        finish = "unavailable"
    elif card["balance"] == 0:
        finish = "consume"
    await conn.execute(
        """INSERT INTO wechat_outbox (merchant_id, card_id, entry_kind, amount, balance, currency, finish)
           VALUES ($1, $2, 'sync', 0, $3, $4, $5)""",
        merchant_id,
        card_id,
        card["balance"],
        card["currency"],
        finish,
    )


async def run(
    pool: asyncpg.Pool, keyring: Keyring, stop: asyncio.Event, policy: Policy | None = None
) -> None:
    """The delivery loop of a serving process or of `giftcards worker`, until `stop` is set."""
    policy = policy or Policy()
    pruned_at = 0.0
    while not stop.is_set():
        handled = 0
        try:
            handled = (await deliver_pass(pool, keyring, policy)).handled
            if time.monotonic() - pruned_at > 60:
                async with pool.acquire() as conn:
                    await conn.execute(
                        "DELETE FROM wechat_callback_nonces WHERE seen_at < now() - interval '15 minutes'"
                    )
                pruned_at = time.monotonic()
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("wechat outbox: database unavailable, retrying shortly")
            else:
                log.exception("wechat outbox pass failed")
        if not handled:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=policy.poll_interval)
