"""Merchants, their API keys, and the QR signing keys (platform admin and back office)."""

from __future__ import annotations

from giftcards.qr import keys as qr_keys
from giftcards.stores import merchants
from giftcards.web.calls import Call, Result, endpoint
from giftcards.web.routing import Api

NAME = {"type": "string", "minLength": 1, "maxLength": 200}


def register(api: Api) -> None:
    merchant = api.schema(
        "Merchant",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "merchant"},
                "name": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
            },
        },
    )
    api_key = api.schema(
        "ApiKey",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "api_key"},
                "label": {"type": "string"},
                "last4": {"type": "string"},
                "created_at": {"type": "string"},
                "revoked_at": {"type": ["string", "null"]},
                "secret": {"type": "string", "description": "Only in the answer that creates the key"},
            },
        },
    )
    qr_key = api.schema(
        "QrKey",
        {
            "type": "object",
            "properties": {
                "kid": {"type": "string"},
                "object": {"const": "qr_key"},
                "state": {"type": "string"},
                "created_at": {"type": "string"},
                "retired_at": {"type": ["string", "null"]},
            },
        },
    )

    @endpoint(
        api,
        "POST",
        "/v1/merchants",
        summary="Create a merchant and its first API key",
        tag="merchants",
        auth=("admin",),
        idempotent=True,
        body={
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {"name": NAME},
        },
        responses={201: {"allOf": [merchant], "properties": {"api_key": api_key}}},
        no_store=True,
    )
    async def create_merchant(call: Call) -> Result:
        return 201, await merchants.create_merchant(call.conn, call.rt.keyring, name=call.body["name"])

    @endpoint(
        api,
        "POST",
        "/v1/api_keys",
        summary="Create another API key",
        tag="merchants",
        auth=("api_key",),
        idempotent=True,
        body={
            "type": "object",
            "additionalProperties": False,
            "properties": {"label": {"type": "string", "maxLength": 200}},
        },
        responses={201: api_key},
        no_store=True,
    )
    async def create_api_key(call: Call) -> Result:
        return 201, await merchants.create_api_key(
            call.conn, call.rt.keyring, merchant_id=call.merchant_id, label=call.body.get("label", "")
        )

    @endpoint(
        api,
        "GET",
        "/v1/api_keys",
        summary="List API keys (never their secrets)",
        tag="merchants",
        auth=("api_key",),
        responses={
            200: {
                "type": "object",
                "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": api_key}},
            }
        },
        no_store=True,
    )
    async def list_api_keys(call: Call) -> Result:
        keys = await merchants.list_api_keys(call.conn, merchant_id=call.merchant_id)
        return 200, {"object": "list", "data": keys, "has_more": False}

    @endpoint(
        api,
        "POST",
        "/v1/api_keys/{key_id}/revoke",
        summary="Revoke an API key at once",
        tag="merchants",
        auth=("api_key",),
        idempotent=True,
        responses={200: api_key},
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
        responses={200: {"type": "object", "properties": {"keys": {"type": "array"}}}},
    )
    async def public_qr_keys(call: Call) -> Result:
        return 200, {"keys": call.rt.qr_keys.keyset.public_keys()}

    @endpoint(
        api,
        "GET",
        "/v1/qr_keys",
        summary="All QR signing keys and their states",
        tag="qr_keys",
        auth=("admin",),
        responses={200: {"type": "object", "properties": {"data": {"type": "array", "items": qr_key}}}},
    )
    async def list_qr_keys(call: Call) -> Result:
        return 200, {"object": "list", "data": await qr_keys.list_keys(call.conn), "has_more": False}

    @endpoint(
        api,
        "POST",
        "/v1/qr_keys/rotate",
        summary="Start signing with a new key",
        tag="qr_keys",
        auth=("admin",),
        responses={201: qr_key},
    )
    async def rotate_qr_key(call: Call) -> Result:
        await qr_keys.rotate(call.conn, call.rt.keyring)
        await call.rt.qr_keys.load(call.conn)
        keys = await qr_keys.list_keys(call.conn)
        return 201, next(key for key in keys if key["state"] == "active")

    @endpoint(
        api,
        "POST",
        "/v1/qr_keys/{kid}/retire",
        summary="Stop a key from verifying",
        tag="qr_keys",
        auth=("admin",),
        responses={200: qr_key},
    )
    async def retire_qr_key(call: Call) -> Result:
        retired = await qr_keys.retire(call.conn, call.path["kid"])
        await call.rt.qr_keys.load(call.conn)
        return 200, retired
