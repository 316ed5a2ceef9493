"""The WeChat outbox: what each wallet card must end up showing, delivered in order per card.

Rows are written by the database itself (trigger `wechat_outbox_feed`, schema/functions/wechat_outbox.sql)
in the transaction
that posts the ledger entry, so no path that moves money can forget WeChat, and a redemption never waits
for it. The delivery worker claims, for each card, only its oldest open message (one short statement,
`FOR UPDATE SKIP LOCKED`, so several workers share the work and never deliver one card out of order),
gives its connection back, calls WeChat, and records the outcome in a short transaction of its own,
if its claim still stands (schema/migrations/0012). No connection, row lock or transaction is held while
WeChat answers.
A failure backs off exponentially with jitter; a message that keeps failing is parked, and holds back the
card's later messages until the back office replays it.

One merchant's messages take at most `Upstream.per_merchant` lanes at once: the other lanes go on with
other merchants' messages while a slow WeChat keeps that merchant's lanes waiting (until the deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from giftcards.core.sealing import Keyring
from giftcards.db import leases
from giftcards.db.pool import Connect, connector, is_unavailable
from giftcards.wechat import accounts
from giftcards.wechat.cards import open_code
from giftcards.wechat.client import DEFAULT_TIMEOUT, WeChat, WeChatFailure
from giftcards.wechat.upstream import Upstream

log = logging.getLogger("giftcards.wechat.outbox")

CODE_CONSUMED = 40099
USER_CARD_STATUS = 40127  # deleted or unavailable in WeChat
_WALLET_STATES = ("in_wallet", "gifting")
_RECORD = {"redeem": "消费", "refund": "退款", "load": "充值", "adjust": "调整"}

# The claim moves next_attempt_at past its own expiry: no worker takes the message meanwhile, and one that
# died with it lets it come due again by itself.
_CLAIM = """
UPDATE wechat_outbox o SET claimed_by = $3, next_attempt_at = now() + make_interval(secs => $4)
 WHERE (o.merchant_id, o.id) = (
       SELECT n.merchant_id, n.id FROM wechat_outbox n
        WHERE n.state = 'pending' AND n.next_attempt_at <= now()
          AND NOT (n.merchant_id = ANY($1::text[])) AND NOT (n.id = ANY($2::bigint[]))
          AND NOT EXISTS (SELECT 1 FROM wechat_outbox earlier
                           WHERE earlier.merchant_id = n.merchant_id AND earlier.card_id = n.card_id
                             AND earlier.state IN ('pending', 'parked') AND earlier.id < n.id)
        ORDER BY n.id
        LIMIT 1
        FOR UPDATE OF n SKIP LOCKED)
RETURNING o.*
"""


@dataclass(frozen=True)
class Policy:
    base_delay: float = 2.0  # seconds before the first retry; doubles per attempt
    max_delay: float = 300.0
    max_attempts: int = 5  # WeChat refused it (an errcode that retrying will not change): park after this
    max_transient_attempts: int = 60  # WeChat unreachable, busy or rate limiting: about four hours
    lanes: int = 4  # messages in flight at once (see deliver_pass)
    pass_limit: int = 500  # messages per pass, so that one pass's bookkeeping stays small
    poll_interval: float = 0.5
    timeout: float = DEFAULT_TIMEOUT  # a delivery's WeChat work in all (GIFTCARDS_WECHAT_TIMEOUT)
    db_timeout: float = 2.0  # to get a connection for a step (GIFTCARDS_DB_TIMEOUT)

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


@dataclass(frozen=True)
class Claimed:
    """A message this delivery claimed, with what it needs to call WeChat once the connection is back."""

    row: asyncpg.Record
    claim: uuid.UUID
    wechat: WeChat | None  # None: WeChat is not set up for the merchant (any more)
    wallet: asyncpg.Record

    @property
    def merchant_id(self) -> str:
        return str(self.row["merchant_id"])


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


async def deliver_pass(
    pool: asyncpg.Pool, keyring: Keyring, policy: Policy | None = None, upstream: Upstream | None = None
) -> PassReport:
    """Deliver every message that is due, each at most once, in order per card. Returns what happened."""
    policy = policy or Policy()
    if upstream is None:
        async with Upstream() as own:
            return await deliver_pass(pool, keyring, policy, own)
    connect = connector(pool, policy.db_timeout)
    report = PassReport()
    attempted: list[int] = []
    in_flight: Counter[str] = Counter()
    claiming = asyncio.Lock()  # one claim at a time, so that `in_flight` is exact when the next one asks

    async def lane() -> None:
        while len(attempted) < policy.pass_limit:
            async with claiming:
                full = {m for m, n in in_flight.items() if n >= upstream.per_merchant} | upstream.busy()
                async with connect() as conn:
                    found, claimed = await _claim(
                        conn, connect, keyring, policy, upstream, report, attempted, full
                    )
                if claimed is not None:
                    in_flight[claimed.merchant_id] += 1
            if not found:
                if not any(in_flight.values()):
                    return
                # Other lanes wait on WeChat: keep taking what they leave (other merchants' messages).
                await asyncio.sleep(policy.poll_interval)
                continue
            if claimed is None:
                continue  # settled without a call
            try:
                await _deliver(connect, policy, claimed, report)
            finally:
                in_flight[claimed.merchant_id] -= 1

    # Lanes hold a connection only for their short steps; half the pool at most, so requests find theirs.
    lanes = max(1, min(policy.lanes, pool.get_max_size() // 2))
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return report


async def _claim(
    conn: asyncpg.Connection,
    connect: Connect,
    keyring: Keyring,
    policy: Policy,
    upstream: Upstream,
    report: PassReport,
    attempted: list[int],
    full: set[str],
) -> tuple[bool, Claimed | None]:
    """The next due message (not of a merchant that is unreachable or has all its lanes), claimed:
    (False, None) when none is due; (True, None) when it needed no WeChat call and was settled here."""
    claim = uuid.uuid4()
    seconds = policy.timeout + leases.MARGIN
    row = await conn.fetchrow(_CLAIM, list(report.unreachable | full), attempted, claim, seconds)
    if row is None:
        return False, None
    attempted.append(row["id"])
    merchant_id, card_id = row["merchant_id"], row["card_id"]
    # No lock on the wallet row: a callback holding the card lock must never wait for WeChat through us.
    wallet = await conn.fetchrow(
        "SELECT * FROM wechat_card_codes WHERE merchant_id = $1 AND card_id = $2", merchant_id, card_id
    )
    if wallet is not None and wallet["wallet_state"] == "consumed" and row["balance"] > 0:
        async with conn.transaction():
            if await _consumed_with_balance(conn, row, claim):
                report.skipped += 1
        return True, None
    if wallet is None or wallet["wallet_state"] not in _WALLET_STATES:
        state = wallet["wallet_state"] if wallet is not None else "not deposited"
        if await _finish(conn, row, claim, "skipped", note=f"not in a wallet ({state})"):
            report.skipped += 1
        return True, None
    # The account as it is now (not as a pass began: a pass lasts while messages keep coming).
    account = await accounts.find(conn, keyring, merchant_id)
    wechat = WeChat(connect, keyring, account, upstream, timeout=policy.timeout) if account else None
    return True, Claimed(row, claim, wechat, wallet)


async def _deliver(connect: Connect, policy: Policy, claimed: Claimed, report: PassReport) -> None:
    """Call WeChat for a claimed message (holding no connection), then record the outcome."""
    row, claim, wechat, wallet = claimed.row, claimed.claim, claimed.wechat, claimed.wallet
    merchant_id, card_id = row["merchant_id"], row["card_id"]
    try:
        if wechat is None:
            raise WeChatFailure("errcode", "WeChat is not set up for this merchant")
        code = open_code(wechat.keyring, merchant_id, card_id, wallet["code_sealed"])
        outcome = await wechat.call(lambda client: _apply(client, row, wallet["wechat_card_id"], code))
    except WeChatFailure as failure:
        if failure.kind == "transport":
            report.unreachable.add(merchant_id)  # leave its other messages alone this pass
        await _failed(connect, policy, row, claim, failure, report)
        return
    except Exception as exc:
        if is_unavailable(exc) or isinstance(exc, asyncpg.PostgresError):
            raise  # the claim lapses by itself and the message comes due again
        # A bug or a sealed value that no longer opens: retrying cannot help forever, so park it in
        # view of the back office instead of failing the whole pass again and again.
        log.exception("wechat outbox delivery broke", extra={"merchant": merchant_id, "card": card_id})
        broke = WeChatFailure("internal", f"internal error ({type(exc).__name__})")
        await _failed(connect, policy, row, claim, broke, report)
        return
    async with connect() as conn, conn.transaction():
        if outcome == "consumed_elsewhere":
            if await _consumed_with_balance(conn, row, claim):
                await _set_wallet(conn, merchant_id, card_id, "consumed")
                report.skipped += 1
            return
        if not await _finish(conn, row, claim, "delivered"):
            return
        if row["finish"] is not None:
            finish = "consumed" if row["finish"] == "consume" else "unavailable"
            await _set_wallet(conn, merchant_id, card_id, finish)
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
    connect: Connect,
    policy: Policy,
    row: asyncpg.Record,
    claim: uuid.UUID,
    failure: WeChatFailure,
    report: PassReport,
) -> None:
    attempts = row["attempts"] + 1
    limit = policy.max_transient_attempts if failure.transient else policy.max_attempts
    fields = {
        "merchant": row["merchant_id"],
        "card": row["card_id"],
        "outbox_message": row["id"],
        "attempts": attempts,
    }
    park = attempts >= limit
    delay = 0.0 if park else policy.backoff(attempts)
    statement, more = (_PARK, ()) if park else (_RETRY, (delay,))
    async with connect() as conn:
        recorded = await conn.fetchval(
            statement, row["merchant_id"], row["id"], claim, attempts, failure.detail, *more
        )
    if not recorded:
        return  # the claim lapsed and another delivery took the message over
    if park:
        log.warning("wechat outbox message parked: %s", failure.detail, extra=fields)
        report.parked += 1
        return
    log.info("wechat outbox delivery failed, retrying in %.1f s: %s", delay, failure.detail, extra=fields)
    report.failed += 1


_PARK = """
UPDATE wechat_outbox
   SET state = 'parked', attempts = $4, last_error = $5, parked_at = now(), claimed_by = NULL
 WHERE merchant_id = $1 AND id = $2 AND claimed_by = $3
RETURNING true"""
_RETRY = """
UPDATE wechat_outbox
   SET attempts = $4, last_error = $5, next_attempt_at = now() + make_interval(secs => $6), claimed_by = NULL
 WHERE merchant_id = $1 AND id = $2 AND claimed_by = $3
RETURNING true"""


async def _finish(
    conn: asyncpg.Connection, row: asyncpg.Record, claim: uuid.UUID, state: str, *, note: str | None = None
) -> bool:
    """The message done (delivered or skipped), if this delivery's claim still stands."""
    done = await conn.fetchval(
        """UPDATE wechat_outbox SET state = $4, attempts = attempts + 1, delivered_at = now(),
                  last_error = coalesce($5, last_error), claimed_by = NULL
            WHERE merchant_id = $1 AND id = $2 AND claimed_by = $3 RETURNING true""",
        row["merchant_id"],
        row["id"],
        claim,
        state,
        note,
    )
    return bool(done)


async def _consumed_with_balance(conn: asyncpg.Connection, row: asyncpg.Record, claim: uuid.UUID) -> bool:
    """WeChat consumed the code (the user did, or we did at an earlier zero balance) and takes no more
    updates, so the wallet cannot show this balance. Money is untouched; the back office is told."""
    if not await _finish(conn, row, claim, "skipped", note="the code is consumed in WeChat"):
        return False
    if row["balance"] > 0:
        await conn.execute(
            """INSERT INTO wechat_discrepancies (merchant_id, card_id, kind, balance, detail)
               VALUES ($1, $2, 'wallet_update_refused_consumed', $3, $4)""",
            row["merchant_id"],
            row["card_id"],
            row["balance"],
            f"the wallet cannot show {money(row['balance'])}: the code is consumed in WeChat",
        )
    return True


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
    pool: asyncpg.Pool,
    keyring: Keyring,
    stop: asyncio.Event,
    policy: Policy | None = None,
    upstream: Upstream | None = None,
) -> None:
    """The delivery loop of a serving process or of `giftcards worker`, until `stop` is set."""
    policy = policy or Policy()
    if upstream is None:
        async with Upstream() as own:
            return await run(pool, keyring, stop, policy, own)
    connect = connector(pool, policy.db_timeout)
    pruned_at = 0.0
    while not stop.is_set():
        handled = 0
        try:
            handled = (await deliver_pass(pool, keyring, policy, upstream)).handled
            if time.monotonic() - pruned_at > 60:
                async with connect() as conn:
                    await conn.execute(
                        "DELETE FROM wechat_callback_nonces WHERE seen_at < now() - interval '15 minutes'"
                    )
                    await leases.purge(conn)
                pruned_at = time.monotonic()
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("wechat outbox: database unavailable, retrying shortly")
            else:
                log.exception("wechat outbox pass failed")
        if not handled:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=policy.poll_interval)
