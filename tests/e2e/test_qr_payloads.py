"""Signed QR payloads: genuine ones redeem; forged, tampered, truncated, foreign, stale and retired
ones do not."""

from __future__ import annotations

import asyncpg
import httpx

from giftcards.qr.signing import KeySet, SigningKey
from giftcards.value import cards
from tests.support.api import Merchant, admin_headers, issue_card
from tests.support.terminals import qr_payload


async def redeem_qr(
    client: httpx.AsyncClient, merchant: Merchant, payload: str, amount: int = 100
) -> httpx.Response:
    return await client.post(
        "/v1/redemptions", json={"qr_payload": payload, "amount": amount}, headers=merchant.headers
    )


async def test_a_genuine_payload_redeems(client: httpx.AsyncClient, merchant: Merchant) -> None:
    card = await issue_card(client, merchant, 1_000)
    payload = await qr_payload(client, merchant, card["id"])
    assert len(payload) == 151 and payload.startswith("GC1")
    response = await redeem_qr(client, merchant, payload, 250)
    assert response.status_code == 201 and response.json()["balance_after"] == 750
    svg = await client.get(f"/v1/cards/{card['id']}/qr.svg", headers=merchant.headers)
    assert svg.headers["content-type"] == "image/svg+xml" and b"<svg" in svg.content


async def test_tampered_truncated_and_forged_payloads_are_refused_before_any_balance(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    card = await issue_card(client, merchant, 1_000)
    payload = await qr_payload(client, merchant, card["id"])
    flipped = payload[:60] + ("A" if payload[60] != "A" else "B") + payload[61:]
    stranger_key = SigningKey.generate()
    forged = KeySet([stranger_key], stranger_key.kid).sign(merchant.id, card["id"])
    for bad in (flipped, payload[:-1], payload[:100], forged, "GC1", payload + "A", "not a payload"):
        response = await redeem_qr(client, merchant, bad)
        assert response.status_code == 404, bad
        assert response.json()["code"] == "invalid_qr_payload"
        assert "balance" not in response.json()
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 1_000


async def test_another_merchants_genuine_payload_answers_like_a_forgery(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant
) -> None:
    card = await issue_card(client, merchant, 1_000)
    payload = await qr_payload(client, merchant, card["id"])
    response = await redeem_qr(client, other_merchant, payload)
    assert response.status_code == 404 and response.json()["code"] == "invalid_qr_payload"
    lookup = await client.post(
        "/v1/cards/lookup", json={"qr_payload": payload}, headers=other_merchant.headers
    )
    assert lookup.status_code == 404 and lookup.json()["code"] == "invalid_qr_payload"


async def test_rotation_keeps_old_cards_working_until_the_old_key_is_retired(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    card = await issue_card(client, merchant, 1_000)
    old_payload = await qr_payload(client, merchant, card["id"])
    rotated = await client.post("/v1/qr_keys/rotate", headers=admin_headers())
    assert rotated.status_code == 201
    new_kid = rotated.json()["kid"]
    new_payload = await qr_payload(client, merchant, card["id"])
    assert new_payload != old_payload
    assert (await redeem_qr(client, merchant, old_payload)).status_code == 201
    assert (await redeem_qr(client, merchant, new_payload)).status_code == 201
    public = (await client.get("/v1/qr_keys/public")).json()["keys"]
    assert (
        len(public) == 2 and {k["crv"] for k in public} == {"Ed25519"} and all("d" not in k for k in public)
    )
    keys = (await client.get("/v1/qr_keys", headers=admin_headers())).json()["data"]
    old_kid = next(k["kid"] for k in keys if k["kid"] != new_kid)
    refused = await client.post(f"/v1/qr_keys/{new_kid}/retire", headers=admin_headers())
    assert refused.status_code == 409  # the signing key cannot be retired
    assert (await client.post(f"/v1/qr_keys/{old_kid}/retire", headers=admin_headers())).status_code == 200
    response = await redeem_qr(client, merchant, old_payload)
    assert response.status_code == 404 and response.json()["code"] == "invalid_qr_payload"
    assert (await redeem_qr(client, merchant, new_payload)).status_code == 201
    assert len((await client.get("/v1/qr_keys/public")).json()["keys"]) == 1


async def test_rotating_payloads_are_good_for_their_step_and_the_one_before(
    client: httpx.AsyncClient, merchant: Merchant, server: object
) -> None:
    card = await issue_card(client, merchant, 1_000)
    keys = server.app.state.runtime.qr_keys.keyset  # type: ignore[attr-defined]
    now = cards.current_step()
    for step, expected in ((now, 201), (now - 1, 201), (now - 2, 404), (now + 5, 404)):
        response = await redeem_qr(client, merchant, keys.sign(merchant.id, card["id"], step), 10)
        assert response.status_code == expected, (step, now, response.text)
