"""A lone UTF-16 surrogate ("\\ud800") is no character: JSON can spell it, PostgreSQL cannot store it. Every
body is refused at parse time with a 400 that names the field, anonymous or not, before anything is stored."""

from __future__ import annotations

import asyncpg
import httpx

from tests.support.api import Merchant, issue_card, with_key
from tests.support.designs import create_design
from tests.support.terminals import till_in_new_store
from tests.support.wallet import customise_api, open_customise_session

JSON = {"Content-Type": "application/json"}


async def stored(db: asyncpg.Connection) -> tuple[int, int, int]:
    row = await db.fetchrow(
        """SELECT (SELECT count(*) FROM cards), (SELECT count(*) FROM gifts),
                  (SELECT count(*) FROM ledger_entries)"""
    )
    return tuple(row)  # type: ignore[return-value]


def refused_field(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "invalid_request"
    (error,) = problem["errors"]
    assert error["message"] == "must not contain a lone UTF-16 surrogate"
    return str(error["field"])


async def test_a_lone_surrogate_in_a_customise_message_is_a_400_naming_the_field(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await create_design(client, merchant, name="Qixi", denominations=[52000])
    base = customise_api(await open_customise_session(client, merchant, "o_gifter", 52000))
    before = await stored(db)
    composed = (
        b'{"design_id": "%s", "amount": 52000, "sender_name": "Ming", "recipient_name": "Hong", '
        b'"message": "for you \\ud800"}' % design["id"].encode()
    )
    sent = await client.post(base + "/send", content=composed, headers=JSON)  # anonymous: the link is all
    assert refused_field(sent) == "message"
    assert await stored(db) == before
    still_open = await client.get(base)
    assert still_open.json()["state"] == "open"


async def test_a_lone_surrogate_is_refused_in_any_field_or_key_of_an_authenticated_body(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    card = await issue_card(client, merchant, 10_000)
    till = await till_in_new_store(client, merchant)
    before = await stored(db)
    issued = await client.post(
        "/v1/cards", content=b'{"amount": 100, "campaign": "\\udfff"}', headers={**with_key(merchant), **JSON}
    )
    assert refused_field(issued) == "campaign"
    keyed = await client.post(
        "/v1/cards", content=b'{"amount": 100, "x\\ud800": 1}', headers={**with_key(merchant), **JSON}
    )
    assert refused_field(keyed) == "x\\ud800"  # written as its escape: the answer must be encodable
    redeemed = await client.post(  # its field error, once the credential is found good
        "/v1/redemptions",
        content=b'{"code": "%s", "amount": 100, "reference": "receipt \\uDBFF"}' % card["code"].encode(),
        headers={**till.keyed(), **JSON},
    )
    assert refused_field(redeemed) == "reference"
    assert await stored(db) == before
    # A surrogate pair is one character, and welcome.
    paired = await client.post(
        "/v1/cards",
        content=b'{"amount": 100, "campaign": "\\ud83d\\ude00"}',
        headers={**with_key(merchant), **JSON},
    )
    assert paired.status_code == 201, paired.text
    assert paired.json()["campaign"] == "\U0001f600"
