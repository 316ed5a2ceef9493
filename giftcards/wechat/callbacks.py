"""WeChat's event pushes: verified, deduplicated, applied once.

* Every request must carry a valid `signature` (SHA1 of the sorted callback Token, timestamp, nonce) and
  a timestamp within five minutes; in AES safe mode the body must also decrypt under `msg_signature`
  (WeChatCrypto). An account with an EncodingAESKey takes only safe-mode pushes.
* A plain-mode signature does not cover the body, so a (timestamp, nonce) pair is bound to the first body
  seen with it: a captured signature cannot carry another event.
* WeChat re-pushes an event it got no timely answer for; (FromUserName, CreateTime, Event, UserCardCode)
  is a primary key, so the repeat is recognised and not applied again.
* Events never move money. `user_consume_card` on a card we still hold value for is recorded as a
  discrepancy for the back office.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import asyncpg
import xmltodict
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

from giftcards.core.errors import DomainError
from giftcards.core.ids import ascii_int
from giftcards.core.sealing import Keyring
from giftcards.value import cards
from giftcards.wechat import outbox
from giftcards.wechat.accounts import Account
from giftcards.wechat.cards import code_hash, seal_code

log = logging.getLogger("giftcards.wechat.callbacks")

MAX_AGE_SECONDS = 300
ANSWER = "success"
MAX_BODY_BYTES = 64 * 1024  # WeChat's event XML is a few hundred bytes; safe mode's envelope adds a third
_SHA1_HEX = re.compile(r"[0-9a-fA-F]{40}")


def signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, *extra])).encode()).hexdigest()  # noqa: S324


def check_request(account: Account, query: Mapping[str, str], *, now: float | None = None) -> None:
    """The plain signature and the timestamp; refuses with 403 and says nothing more specific."""
    sig, timestamp, nonce = (query.get(k, "") for k in ("signature", "timestamp", "nonce"))
    expected = signature(account.callback_token, timestamp, nonce)
    if not (sig and timestamp and nonce) or not hmac.compare_digest(expected, sig.lower()):
        raise DomainError("wechat_signature_invalid", "the signature does not verify")
    stamp = ascii_int(timestamp, 12)
    if stamp is None:
        raise DomainError("wechat_signature_invalid", "the timestamp is not a timestamp")
    if abs((time.time() if now is None else now) - stamp) > MAX_AGE_SECONDS:
        raise DomainError("wechat_callback_stale", f"the timestamp is more than {MAX_AGE_SECONDS} s off")


def check_query(account: Account, query: Mapping[str, str]) -> None:
    """All that the query alone can prove, before the body is read: the signature and its age, the mode
    the account takes, and in safe mode a message signature for the body to be checked against."""
    check_request(account, query)
    encrypted = query.get("encrypt_type", "raw").lower() == "aes"
    if account.aes_mode != encrypted:
        raise DomainError(
            "wechat_signature_invalid",
            "this account takes safe-mode (aes) pushes only"
            if account.aes_mode
            else "no EncodingAESKey is set",
        )
    if encrypted and not _SHA1_HEX.fullmatch(query.get("msg_signature", "")):
        raise DomainError("wechat_signature_invalid", "the message signature does not verify")


def echo(account: Account, query: Mapping[str, str]) -> str:
    """The server URL check: answer `echostr` verbatim once the signature verifies."""
    check_request(account, query)
    return query.get("echostr", "")


def open_body(account: Account, query: Mapping[str, str], body: bytes) -> str:
    """The event XML in plain text, after the safe-mode decryption and its msg_signature check (the
    query has passed `check_query`)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DomainError("invalid_request", "the body is not UTF-8") from None
    if not account.aes_mode:
        return text
    crypto = WeChatCrypto(account.callback_token, account.encoding_aes_key, account.appid)
    try:
        return str(
            crypto.decrypt_message(text, query.get("msg_signature", ""), query["timestamp"], query["nonce"])
        )
    except (InvalidSignatureException, InvalidAppIdException):
        raise DomainError("wechat_signature_invalid", "the message signature does not verify") from None
    except Exception:  # malformed envelope or ciphertext: it could not have come from WeChat
        raise DomainError("wechat_signature_invalid", "the message does not decrypt") from None


def parse_event(xml: str) -> dict[str, str]:
    try:
        doc = xmltodict.parse(xml, disable_entities=True)
    except Exception:
        raise DomainError("invalid_request", "the body is not WeChat's XML") from None
    fields = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(fields, dict):
        raise DomainError("invalid_request", "the body is not WeChat's XML")
    return {k: v if isinstance(v, str) else "" for k, v in fields.items()}


async def bind_nonce(
    conn: asyncpg.Connection, merchant_id: str, query: Mapping[str, str], body: bytes
) -> None:
    """Plain mode: the first body seen with a (timestamp, nonce) owns it; another body is a forgery."""
    digest = hashlib.sha256(body).digest()
    nonce, timestamp = query["nonce"][:128], int(query["timestamp"])
    fresh = await conn.fetchval(
        """INSERT INTO wechat_callback_nonces (merchant_id, nonce, timestamp, body_hash)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true""",
        merchant_id,
        nonce,
        timestamp,
        digest,
    )
    if fresh:
        return
    # A statement of its own: it must see the row a concurrent request has just committed.
    seen = await conn.fetchval(
        """SELECT body_hash FROM wechat_callback_nonces
            WHERE merchant_id = $1 AND nonce = $2 AND timestamp = $3""",
        merchant_id,
        nonce,
        timestamp,
    )
    if seen is not None and not hmac.compare_digest(bytes(seen), digest):
        raise DomainError("wechat_signature_invalid", "the signature was made for another message")


async def receive(
    conn: asyncpg.Connection, keyring: Keyring, account: Account, query: Mapping[str, str], body: bytes
) -> str:
    """Verify, dedupe and apply one push, all in one transaction; answers WeChat's "success"."""
    check_query(account, query)
    xml = open_body(account, query, body)
    event = parse_event(xml)
    if event.get("MsgType") != "event":
        return ANSWER
    sender, created, name = event.get("FromUserName", ""), event.get("CreateTime", ""), event.get("Event", "")
    if not (0 < len(sender) <= 128 and ascii_int(created, 12) is not None and 0 < len(name) <= 64):
        raise DomainError("invalid_request", "the event lacks FromUserName, CreateTime or Event")
    async with conn.transaction():
        if not account.aes_mode:
            await bind_nonce(conn, account.merchant_id, query, body)
        first = await conn.fetchval(
            """INSERT INTO wechat_events (merchant_id, from_user, create_time, event, code_hash, outcome)
               VALUES ($1, $2, $3, $4, $5, 'received') ON CONFLICT DO NOTHING RETURNING true""",
            account.merchant_id,
            sender,
            int(created),
            name,
            code_hash(keyring, event.get("UserCardCode", "")),
        )
        if not first:
            log.info(
                "wechat event repeated, already applied",
                extra={"merchant": account.merchant_id, "event": name},
            )
            return ANSWER
        card_id, outcome = await apply_event(conn, keyring, account.merchant_id, name, event)
        await conn.execute(
            """UPDATE wechat_events SET card_id = $6, outcome = $7
                WHERE merchant_id = $1 AND from_user = $2 AND create_time = $3 AND event = $4
                  AND code_hash = $5""",
            account.merchant_id,
            sender,
            int(created),
            name,
            code_hash(keyring, event.get("UserCardCode", "")),
            card_id,
            outcome,
        )
    log.info(
        "wechat event applied",
        extra={"merchant": account.merchant_id, "event": name, "card": card_id, "outcome": outcome},
    )
    return ANSWER


async def apply_event(
    conn: asyncpg.Connection, keyring: Keyring, merchant_id: str, name: str, event: dict[str, str]
) -> tuple[str | None, str]:
    """(card id, outcome). Locks the card row before the wallet row: the ledger trigger reads the wallet
    state under the same card lock, so a state change and a balance change are always ordered."""
    known = _HANDLERS.get(name)
    if known is None:
        return None, "ignored"
    applies_in, handler = known
    code = event.get("UserCardCode", "")
    # A gift accepted may come with a new code; the card is known by the old one.
    lookup = (event.get("OldUserCardCode") or code) if name == "user_get_card" else code
    found = await conn.fetchval(
        """SELECT card_id FROM wechat_card_codes
            WHERE merchant_id = $1 AND wechat_card_id = $2 AND code_hash = $3""",
        merchant_id,
        event.get("CardId", ""),
        code_hash(keyring, lookup),
    )
    if found is None:
        return None, "unknown_card"
    await conn.execute(
        "SELECT 1 FROM cards WHERE merchant_id = $1 AND id = $2 FOR UPDATE", merchant_id, found
    )
    wallet = await conn.fetchrow(
        "SELECT * FROM wechat_card_codes WHERE merchant_id = $1 AND card_id = $2 FOR UPDATE",
        merchant_id,
        found,
    )
    if applies_in is not None and wallet["wallet_state"] not in applies_in:
        return found, f"ignored_{wallet['wallet_state']}"
    return found, await handler(conn, keyring, wallet, event)


async def _got_card(
    conn: asyncpg.Connection, keyring: Keyring, wallet: asyncpg.Record, event: dict[str, str]
) -> str:
    gift = event.get("IsGiveByFriend") == "1"
    new_code = event.get("UserCardCode", "")
    merchant_id, card_id = wallet["merchant_id"], wallet["card_id"]
    await conn.execute(
        """UPDATE wechat_card_codes
              SET wallet_state = 'in_wallet', openid = $3, gifting_to = NULL, updated_at = now(),
                  code_hash = coalesce($4, code_hash), code_sealed = coalesce($5, code_sealed)
            WHERE merchant_id = $1 AND card_id = $2""",
        merchant_id,
        card_id,
        event["FromUserName"][:128],
        code_hash(keyring, new_code) if new_code else None,
        seal_code(keyring, merchant_id, card_id, new_code) if new_code else None,
    )
    if gift:  # the card has another holder: what was shown to the giver no longer spends it
        await cards.end_payloads(conn, merchant_id, card_id)
    # WeChat keeps a balance with the code, but only what we send: send the whole state now.
    await outbox.enqueue_resync(conn, merchant_id, card_id)
    return "gift_accepted" if gift else "added_to_wallet"


async def _gifting(
    conn: asyncpg.Connection, keyring: Keyring, wallet: asyncpg.Record, event: dict[str, str]
) -> str:
    returned = event.get("IsReturnBack") == "1"
    friend = (event.get("FriendUserName") or "")[:128] or None
    await conn.execute(
        """UPDATE wechat_card_codes SET wallet_state = $3, gifting_to = $4, updated_at = now()
            WHERE merchant_id = $1 AND card_id = $2""",
        wallet["merchant_id"],
        wallet["card_id"],
        "in_wallet" if returned else "gifting",
        None if returned else friend,
    )
    return "gift_returned" if returned else "gifting"


async def _deleted(
    conn: asyncpg.Connection, keyring: Keyring, wallet: asyncpg.Record, event: dict[str, str]
) -> str:
    await _set_state(conn, wallet, "deleted")
    return "deleted_from_wallet"


async def _consumed(
    conn: asyncpg.Connection, keyring: Keyring, wallet: asyncpg.Record, event: dict[str, str]
) -> str:
    balance = await conn.fetchval(
        "SELECT balance FROM cards WHERE merchant_id = $1 AND id = $2",
        wallet["merchant_id"],
        wallet["card_id"],
    )
    await _set_state(conn, wallet, "consumed")
    if balance == 0:
        return "consumed"
    source = (event.get("ConsumeSource") or "unknown")[:40]
    await conn.execute(
        """INSERT INTO wechat_discrepancies (merchant_id, card_id, kind, balance, detail)
           VALUES ($1, $2, 'consumed_in_wechat_with_balance', $3, $4)""",
        wallet["merchant_id"],
        wallet["card_id"],
        balance,
        f"WeChat reports the card consumed ({source}) while the ledger holds {outbox.money(balance)}",
    )
    log.warning(
        "wechat consumed a card that still holds value",
        extra={"merchant": wallet["merchant_id"], "card": wallet["card_id"], "source": source},
    )
    return "discrepancy_recorded"


async def _set_state(conn: asyncpg.Connection, wallet: asyncpg.Record, state: str) -> None:
    await conn.execute(
        """UPDATE wechat_card_codes SET wallet_state = $3, gifting_to = NULL, updated_at = now()
            WHERE merchant_id = $1 AND card_id = $2""",
        wallet["merchant_id"],
        wallet["card_id"],
        state,
    )


_IN_WALLET = ("in_wallet", "gifting")

# Each event, the wallet states it applies in (None: any) and what it does; in another state it is ignored.
_HANDLERS: dict[str, tuple[tuple[str, ...] | None, Any]] = {
    "user_get_card": (("deposited", *_IN_WALLET), _got_card),
    "user_gifting_card": (_IN_WALLET, _gifting),
    "user_del_card": (_IN_WALLET, _deleted),
    "user_consume_card": (None, _consumed),
}
