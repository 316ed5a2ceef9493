"""Images (design covers, gifters' photos) and occasion designs: the merchant's catalogue, by API key."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response

from giftcards.core.errors import DomainError
from giftcards.gifting import designs, images
from giftcards.gifting.designs import DesignSpec
from giftcards.web.api.gifts import AMOUNT, COLOR, CURRENCY, ID, LIST_LIMIT, NULLABLE_DATE_TIME, time_value
from giftcards.web.calls import Call, Result, endpoint
from giftcards.web.openapi import list_of
from giftcards.web.routing import Api

DESIGN_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 100},
    "occasion": {"type": "string", "enum": list(designs.OCCASIONS)},
    "currency": CURRENCY,
    "background_color": COLOR,
    "accent_color": COLOR,
    "text_color": COLOR,
    "cover_image_id": {**ID, "type": ["string", "null"]},
    "denominations": {"type": "array", "maxItems": 12, "items": AMOUNT},
    "min_amount": AMOUNT,
    "max_amount": AMOUNT,
    "stock": {"type": ["integer", "null"], "minimum": 0, "maximum": 10_000_000},
    "sale_starts_at": NULLABLE_DATE_TIME,
    "sale_ends_at": NULLABLE_DATE_TIME,
    "card_validity_days": {"type": "integer", "minimum": 1, "maximum": 3660},
    "active": {"type": "boolean"},
}
_UPDATABLE = (
    "name",
    "active",
    "stock",
    "sale_starts_at",
    "sale_ends_at",
    "cover_image_id",
    "background_color",
    "accent_color",
    "text_color",
)
IMAGE_BODY = {"x-media-types": sorted(images.MEDIA_TYPES), "description": "The image file's bytes"}
# What an image upload declares: its raw body, and its own byte limit (web/body.py counts as it reads).
UPLOAD: dict[str, Any] = {
    "body": IMAGE_BODY,
    "max_body": images.MAX_UPLOAD_BYTES,
    "too_large": "image_too_large",
}


async def read_image(call: Call) -> images.CleanImage:
    """The body as a sanitised image, decoded in a thread (the body gate has bounded its size)."""
    request = call.request
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if media_type not in images.MEDIA_TYPES:
        raise DomainError(
            "unsupported_media_type",
            "send the image's bytes as image/jpeg, image/png or image/webp",
            accepted=sorted(images.MEDIA_TYPES),
        )
    return await asyncio.to_thread(images.sanitize, raw, media_type)


def register(api: Api) -> None:
    image = api.schema("Image", {"type": "object", "properties": {"id": {"type": "string"}}})
    design = api.schema(
        "Design",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "design"},
                **DESIGN_FIELDS,
                "min_amount": {"type": ["integer", "null"]},
                "max_amount": {"type": ["integer", "null"]},
                "card_validity_days": {"type": ["integer", "null"]},
                "sold": {"type": "integer"},
                "remaining": {"type": ["integer", "null"]},
            },
        },
    )

    @endpoint(
        api,
        "POST",
        "/v1/images",
        summary="Upload an image (a design cover or a gifter's photo) as raw JPEG, PNG or WebP bytes",
        tag="designs",
        auth=("api_key",),
        **UPLOAD,
        query={
            "type": "object",
            "required": ["purpose"],
            "additionalProperties": False,
            "properties": {"purpose": {"type": "string", "enum": list(images.PURPOSES)}},
        },
        responses={201: image},
    )
    async def upload_image(call: Call) -> Result:
        clean = await read_image(call)
        return 201, await images.store(call.conn, call.merchant_id, call.query["purpose"], clean)

    @endpoint(
        api,
        "GET",
        "/v1/images/{image_id}",
        summary="An image as stored (re-encoded, without metadata)",
        tag="designs",
        auth=("api_key",),
        media_type="image/jpeg",
        responses={200: {"type": "string", "format": "binary"}},
    )
    async def get_image(call: Call) -> Result:
        row = await images.fetch(call.conn, call.merchant_id, call.path["image_id"])
        return Response(bytes(row["data"]), media_type=row["media_type"])

    @endpoint(
        api,
        "POST",
        "/v1/designs",
        summary="Create an occasion design (optionally a limited edition with a sale window)",
        tag="designs",
        auth=("api_key",),
        idempotent=True,
        body={
            "type": "object",
            "required": ["name", "occasion"],
            "additionalProperties": False,
            "properties": DESIGN_FIELDS,
        },
        responses={201: design},
    )
    async def create_design(call: Call) -> Result:
        b = call.body
        spec = DesignSpec(
            **{
                k: b[k]
                for k in DESIGN_FIELDS
                if k in b and not k.startswith("sale_") and k != "denominations"
            },
            denominations=tuple(b.get("denominations", ())),
            sale_starts_at=time_value(b.get("sale_starts_at")),
            sale_ends_at=time_value(b.get("sale_ends_at")),
        )
        return 201, await designs.create(call.conn, call.merchant_id, spec)

    @endpoint(
        api,
        "GET",
        "/v1/designs",
        summary="List designs, newest first",
        tag="designs",
        auth=("api_key",),
        query={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "limit": LIST_LIMIT,
                "starting_after": ID,
                "occasion": {"type": "string", "enum": list(designs.OCCASIONS)},
                "on_sale": {"type": "boolean"},
            },
        },
        responses={200: list_of(design)},
    )
    async def list_designs(call: Call) -> Result:
        q = call.query
        return 200, await designs.list_designs(
            call.conn,
            call.merchant_id,
            limit=q.get("limit", designs.PAGE_LIMIT_DEFAULT),
            starting_after=q.get("starting_after"),
            occasion=q.get("occasion"),
            on_sale=q.get("on_sale"),
        )

    @endpoint(
        api,
        "GET",
        "/v1/designs/{design_id}",
        summary="A design",
        tag="designs",
        auth=("api_key",),
        responses={200: design},
    )
    async def get_design(call: Call) -> Result:
        return 200, await designs.get(call.conn, call.merchant_id, call.path["design_id"])

    @endpoint(
        api,
        "POST",
        "/v1/designs/{design_id}",
        summary="Change a design (name, look, active, stock, sale window; not its amounts)",
        tag="designs",
        auth=("api_key",),
        idempotent=True,
        body={
            "type": "object",
            "additionalProperties": False,
            "properties": {k: DESIGN_FIELDS[k] for k in _UPDATABLE},
        },
        responses={200: design},
    )
    async def update_design(call: Call) -> Result:
        changes = dict(call.body)
        for key in ("sale_starts_at", "sale_ends_at"):
            if key in changes:
                changes[key] = time_value(changes[key])
        return 200, await designs.update(call.conn, call.merchant_id, call.path["design_id"], changes)
