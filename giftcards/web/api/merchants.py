"""Merchants, their API keys, and the QR signing keys (platform admin and back office)."""

from __future__ import annotations

from giftcards.core.shapes import Page
from giftcards.qr import keys as qr_keys
from giftcards.qr.shapes import PublicKey, PublicKeySet, QrKey
from giftcards.stores import merchants
from giftcards.stores.shapes import ApiKey, CreateApiKey, CreateMerchant, NewMerchant
from giftcards.web.calls import ADMIN, MERCHANT, PUBLIC, Call, Operations, Result
from giftcards.web.routing import Api


def register(api: Api) -> None:
    route = Operations(api, tag="merchants", auth=ADMIN)

    @route.post(
        "/v1/merchants",
        "Create a merchant and its first API key",
        created=NewMerchant,
        body=CreateMerchant,
        no_store=True,
    )
    async def create_merchant(call: Call) -> Result:
        return 201, await merchants.create_merchant(call.conn, call.rt.keyring, name=call.body.name)

    @route.post(
        "/v1/api_keys",
        "Create another API key",
        auth=MERCHANT,
        created=ApiKey,
        body=CreateApiKey,
        no_store=True,
    )
    async def create_api_key(call: Call) -> Result:
        return 201, await merchants.create_api_key(
            call.conn, call.rt.keyring, merchant_id=call.merchant_id, label=call.body.label
        )

    @route.get(
        "/v1/api_keys",
        "List API keys (never their secrets)",
        auth=MERCHANT,
        answer=Page[ApiKey],
        no_store=True,
    )
    async def list_api_keys(call: Call) -> Result:
        return 200, Page(data=await merchants.list_api_keys(call.conn, merchant_id=call.merchant_id))

    @route.post(
        "/v1/api_keys/{key_id}/revoke",
        "Revoke an API key at once",
        auth=MERCHANT,
        answer=ApiKey,
        no_store=True,
    )
    async def revoke_api_key(call: Call) -> Result:
        return 200, await merchants.revoke_api_key(
            call.conn, merchant_id=call.merchant_id, key_id=call.path["key_id"]
        )

    @route.get(
        "/v1/qr_keys/public",
        "The public keys that verify QR payloads (JWK set)",
        auth=PUBLIC,
        tag="qr_keys",
        answer=PublicKeySet,
        uses_db=False,
    )
    async def public_qr_keys(call: Call) -> Result:
        keys = [PublicKey(**key) for key in call.rt.qr_keys.keyset.public_keys()]
        return 200, PublicKeySet(keys)

    @route.get("/v1/qr_keys", "All QR signing keys and their states", tag="qr_keys", answer=Page[QrKey])
    async def list_qr_keys(call: Call) -> Result:
        return 200, Page(data=await qr_keys.list_keys(call.conn))

    @route.post("/v1/qr_keys/rotate", "Start signing with a new key", tag="qr_keys", created=QrKey)
    async def rotate_qr_key(call: Call) -> Result:
        await qr_keys.rotate(call.conn, call.rt.keyring)
        await call.rt.qr_keys.load(call.conn)
        keys = await qr_keys.list_keys(call.conn)
        return 201, next(key for key in keys if key.state == "active")

    @route.post("/v1/qr_keys/{kid}/retire", "Stop a key from verifying", tag="qr_keys", answer=QrKey)
    async def retire_qr_key(call: Call) -> Result:
        retired = await qr_keys.retire(call.conn, call.path["kid"])
        await call.rt.qr_keys.load(call.conn)
        return 200, retired
