"""Merchants, their API keys, and the QR signing keys (platform admin and back office)."""

from __future__ import annotations

from giftcards.core.shapes import Page
from giftcards.qr import keys as qr_keys
from giftcards.qr.shapes import PublicKey, PublicKeySet, QrKey
from giftcards.stores import merchants
from giftcards.stores.shapes import ApiKey, CreateApiKey, CreateMerchant, NewMerchant
from giftcards.web.calls import Call, Result, endpoint
from giftcards.web.routing import Api


def register(api: Api) -> None:
    @endpoint(
        api,
        "POST",
        "/v1/merchants",
        summary="Create a merchant and its first API key",
        tag="merchants",
        auth=("admin",),
        idempotent=True,
        body=CreateMerchant,
        responses={201: NewMerchant},
        no_store=True,
    )
    async def create_merchant(call: Call) -> Result:
        return 201, await merchants.create_merchant(call.conn, call.rt.keyring, name=call.body.name)

    @endpoint(
        api,
        "POST",
        "/v1/api_keys",
        summary="Create another API key",
        tag="merchants",
        auth=("api_key",),
        idempotent=True,
        body=CreateApiKey,
        responses={201: ApiKey},
        no_store=True,
    )
    async def create_api_key(call: Call) -> Result:
        return 201, await merchants.create_api_key(
            call.conn, call.rt.keyring, merchant_id=call.merchant_id, label=call.body.label
        )

    @endpoint(
        api,
        "GET",
        "/v1/api_keys",
        summary="List API keys (never their secrets)",
        tag="merchants",
        auth=("api_key",),
        responses={200: Page[ApiKey]},
        no_store=True,
    )
    async def list_api_keys(call: Call) -> Result:
        return 200, Page(data=await merchants.list_api_keys(call.conn, merchant_id=call.merchant_id))

    @endpoint(
        api,
        "POST",
        "/v1/api_keys/{key_id}/revoke",
        summary="Revoke an API key at once",
        tag="merchants",
        auth=("api_key",),
        idempotent=True,
        responses={200: ApiKey},
        no_store=True,
    )
    async def revoke_api_key(call: Call) -> Result:
        return 200, await merchants.revoke_api_key(
            call.conn, merchant_id=call.merchant_id, key_id=call.path["key_id"]
        )

    @endpoint(
        api,
        "GET",
        "/v1/qr_keys/public",
        summary="The public keys that verify QR payloads (JWK set)",
        tag="qr_keys",
        uses_db=False,
        responses={200: PublicKeySet},
    )
    async def public_qr_keys(call: Call) -> Result:
        keys = [PublicKey(**key) for key in call.rt.qr_keys.keyset.public_keys()]
        return 200, PublicKeySet(keys)

    @endpoint(
        api,
        "GET",
        "/v1/qr_keys",
        summary="All QR signing keys and their states",
        tag="qr_keys",
        auth=("admin",),
        responses={200: Page[QrKey]},
    )
    async def list_qr_keys(call: Call) -> Result:
        return 200, Page(data=await qr_keys.list_keys(call.conn))

    @endpoint(
        api,
        "POST",
        "/v1/qr_keys/rotate",
        summary="Start signing with a new key",
        tag="qr_keys",
        auth=("admin",),
        responses={201: QrKey},
    )
    async def rotate_qr_key(call: Call) -> Result:
        await qr_keys.rotate(call.conn, call.rt.keyring)
        await call.rt.qr_keys.load(call.conn)
        keys = await qr_keys.list_keys(call.conn)
        return 201, next(key for key in keys if key.state == "active")

    @endpoint(
        api,
        "POST",
        "/v1/qr_keys/{kid}/retire",
        summary="Stop a key from verifying",
        tag="qr_keys",
        auth=("admin",),
        responses={200: QrKey},
    )
    async def retire_qr_key(call: Call) -> Result:
        retired = await qr_keys.retire(call.conn, call.path["kid"])
        await call.rt.qr_keys.load(call.conn)
        return 200, retired
