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

    @route.post("/v1/merchants", created=NewMerchant, body=CreateMerchant, no_store=True)
    async def create_merchant(call: Call) -> Result:
        """Create a merchant and its first API key"""
        return 201, await merchants.create_merchant(call.conn, call.keyring, name=call.body.name)

    @route.post("/v1/api_keys", auth=MERCHANT, created=ApiKey, body=CreateApiKey, no_store=True)
    async def create_api_key(call: Call) -> Result:
        """Create another API key"""
        return 201, await merchants.create_api_key(
            call.conn, call.keyring, merchant_id=call.merchant_id, label=call.body.label
        )

    @route.get("/v1/api_keys", auth=MERCHANT, answer=Page[ApiKey], no_store=True)
    async def list_api_keys(call: Call) -> Result:
        """List API keys (never their secrets)"""
        return 200, Page(data=await merchants.list_api_keys(call.conn, merchant_id=call.merchant_id))

    @route.post("/v1/api_keys/{key_id}/revoke", auth=MERCHANT, answer=ApiKey, no_store=True)
    async def revoke_api_key(call: Call) -> Result:
        """Revoke an API key at once"""
        return 200, await merchants.revoke_api_key(
            call.conn, merchant_id=call.merchant_id, key_id=call.path["key_id"]
        )

    @route.get("/v1/qr_keys/public", auth=PUBLIC, tag="qr_keys", answer=PublicKeySet, uses_db=False)
    async def public_qr_keys(call: Call) -> Result:
        """The public keys that verify QR payloads (JWK set)"""
        keys = [PublicKey(**key) for key in call.rt.qr_keys.keyset.public_keys()]
        return 200, PublicKeySet(keys)

    @route.get("/v1/qr_keys", tag="qr_keys", answer=Page[QrKey])
    async def list_qr_keys(call: Call) -> Result:
        """All QR signing keys and their states"""
        return 200, Page(data=await qr_keys.list_keys(call.conn))

    @route.post("/v1/qr_keys/rotate", tag="qr_keys", created=QrKey)
    async def rotate_qr_key(call: Call) -> Result:
        """Start signing with a new key"""
        await qr_keys.rotate(call.conn, call.keyring)
        await call.rt.qr_keys.load(call.conn)
        keys = await qr_keys.list_keys(call.conn)
        return 201, next(key for key in keys if key.state == "active")

    @route.post("/v1/qr_keys/{kid}/retire", tag="qr_keys", answer=QrKey)
    async def retire_qr_key(call: Call) -> Result:
        """Stop a key from verifying"""
        retired = await qr_keys.retire(call.conn, call.path["kid"])
        await call.rt.qr_keys.load(call.conn)
        return 200, retired
