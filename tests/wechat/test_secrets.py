"""The AppSecret, callback Token, EncodingAESKey, access tokens, tickets and card codes stay secret:
sealed at rest, write-only in the API, absent from every log line and every stored error."""

from __future__ import annotations

import asyncio
import base64
import logging
import os

import asyncpg
import httpx
import pytest

from giftcards.core.logs import JsonFormatter
from tests.support.api import Merchant, with_key
from tests.support.servers import LiveServer
from tests.wechat.conftest import CALLBACK_TOKEN, LOGO, Delivery, Wallet, set_up_wechat
from tests.wechat_standin import CallbackConfig, WeChatStandin


async def test_settings_are_validated_and_secrets_are_write_only(
    client: httpx.AsyncClient, merchant: Merchant, standin: WeChatStandin
) -> None:
    first = await client.put("/v1/wechat/account", json={"appid": standin.appid}, headers=merchant.headers)
    assert {e["field"] for e in first.json()["errors"]} == {"secret", "callback_token"}
    remote_http = await set_up_wechat(client, merchant, standin, base_url="http://api.example.com/")
    assert (remote_http.status_code, remote_http.json()["errors"][0]["field"]) == (400, "base_url")
    bad_appid = await set_up_wechat(client, merchant, standin, appid="not-an-appid")
    assert bad_appid.status_code == 400
    missing = await client.get("/v1/wechat/account", headers=merchant.headers)
    assert (missing.status_code, missing.json()["code"]) == (409, "wechat_not_configured")

    made = await set_up_wechat(client, merchant, standin)
    assert made.status_code == 200
    view = made.json()
    assert (view["appid"], view["secret_set"], view["message_mode"]) == (standin.appid, True, "plain")
    assert view["callback_path"] == f"/wechat/callback/{merchant.id}"
    # An update without the secrets keeps them.
    moved = await client.put(
        "/v1/wechat/account",
        json={"appid": standin.appid, "base_url": standin.base_url},
        headers=merchant.headers,
    )
    assert moved.status_code == 200
    assert (
        await client.post(
            "/v1/wechat/designs/default/sync", json={"logo_url": LOGO}, headers=merchant.headers
        )
    ).status_code == 201
    for answer in (made, moved, await client.get("/v1/wechat/account", headers=merchant.headers)):
        assert standin.secret not in answer.text and CALLBACK_TOKEN not in answer.text


async def test_no_secret_reaches_an_answer_a_log_line_or_the_database_in_the_clear(
    client: httpx.AsyncClient,
    merchant: Merchant,
    standin: WeChatStandin,
    server: LiveServer,
    delivery: Delivery,
    db: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="giftcards")
    caplog.set_level(logging.DEBUG, logger="wechatpy")
    aes_key = base64.b64encode(os.urandom(32)).decode().rstrip("=")
    answers: list[httpx.Response] = []
    answers.append(await set_up_wechat(client, merchant, standin, encoding_aes_key=aes_key))
    answers.append(
        await client.post(
            "/v1/wechat/designs/default/sync", json={"logo_url": LOGO}, headers=with_key(merchant)
        )
    )
    standin.callback = CallbackConfig(
        f"{server.url}/wechat/callback/{merchant.id}", CALLBACK_TOKEN, mode="aes", encoding_aes_key=aes_key
    )
    wallet = Wallet(client, merchant, standin, server, answers[-1].json()["wechat_card_id"])
    card = await wallet.issue_in_wallet(5_000)
    await wallet.redeem(card, 100)
    await delivery.drain()

    standin.expire_tokens()  # a refresh, logged
    standin.go_down()  # failures, logged and stored, with the token-bearing URLs in requests' messages
    await wallet.redeem(card, 100)
    await delivery.once()
    other = await wallet.client.post("/v1/cards", json={"amount": 100}, headers=merchant.headers)
    answers.append(await client.post(f"/v1/cards/{other.json()['id']}/wechat/sync", headers=merchant.headers))
    assert answers[-1].json()["code"] == "wechat_unavailable"
    standin.come_up()
    await asyncio.sleep(0.1)
    await delivery.drain()
    assert wallet.in_wechat(card).balance == 4_800
    answers.append(await client.get("/v1/wechat/account", headers=merchant.headers))
    answers.append(await client.get("/v1/wechat/outbox", headers=merchant.headers))
    answers.append(await client.get(f"/v1/cards/{card.id}/wechat", headers=merchant.headers))

    secrets = {standin.secret, CALLBACK_TOKEN, aes_key}
    secrets |= {cred.value for cred in standin.state.credentials.values()}  # access tokens and tickets
    assert len(secrets) >= 5
    lines = [
        JsonFormatter().format(r)
        for r in caplog.records
        if not r.name.startswith(("wechat_standin", "httpx"))
    ]
    assert any("access_token refused" in line for line in lines)  # the refresh was logged ...
    assert any("unreachable" in line for line in lines)  # ... and so was the outage
    stored = [
        str(v) for v in await db.fetchval("SELECT array_agg(coalesce(last_error, '')) FROM wechat_outbox")
    ]
    for secret in secrets:
        for text in [a.text for a in answers] + lines + stored:
            assert secret not in text
    for text in [a.text for a in answers] + lines + stored:  # nor the card's code, a bearer secret
        assert card.code not in text
    row = await db.fetchrow("SELECT * FROM wechat_accounts WHERE merchant_id = $1", merchant.id)
    sealed = b"".join(bytes(row[k]) for k in ("secret_sealed", "callback_token_sealed", "aes_key_sealed"))
    for secret in (standin.secret, CALLBACK_TOKEN, aes_key):
        assert secret.encode() not in sealed
    for value in await db.fetchval("SELECT array_agg(value_sealed) FROM wechat_credentials"):
        assert all(cred.value.encode() not in bytes(value) for cred in standin.state.credentials.values())
