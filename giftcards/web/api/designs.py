"""Images (design covers, gifters' photos) and occasion designs: the merchant's catalogue, by API key."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response

from giftcards.core.errors import DomainError
from giftcards.core.shapes import Page, given
from giftcards.gifting import designs, images
from giftcards.gifting.shapes import Design, DesignChange, DesignQuery, DesignSpec, Image, ImageQuery
from giftcards.web.calls import BINARY, MERCHANT, Call, Operations, Result
from giftcards.web.routing import Api

# What an image upload declares: its raw body, and its own byte limit (web/body.py counts as it reads).
UPLOAD: dict[str, Any] = {
    "uploads": tuple(sorted(images.MEDIA_TYPES)),
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
    route = Operations(api, tag="designs", auth=MERCHANT)

    @route.post("/v1/images", created=Image, **UPLOAD, query=ImageQuery)
    async def upload_image(call: Call) -> Result:
        """Upload an image (a design cover or a gifter's photo) as raw JPEG, PNG or WebP bytes"""
        clean = await read_image(call)
        return 201, await images.store(call.conn, call.merchant_id, call.query.purpose, clean)

    @route.get("/v1/images/{image_id}", answer=BINARY, media_type="image/jpeg")
    async def get_image(call: Call) -> Result:
        """An image as stored (re-encoded, without metadata)"""
        row = await images.fetch(call.conn, call.merchant_id, call.path["image_id"])
        return Response(bytes(row["data"]), media_type=row["media_type"])

    @route.post("/v1/designs", created=Design, body=DesignSpec)
    async def create_design(call: Call) -> Result:
        """Create an occasion design (optionally a limited edition with a sale window)"""
        return 201, await designs.create(call.conn, call.merchant_id, call.body)

    @route.get("/v1/designs", answer=Page[Design], query=DesignQuery)
    async def list_designs(call: Call) -> Result:
        """List designs, newest first"""
        return 200, await designs.list_designs(call.conn, call.merchant_id, **call.filters)

    @route.get("/v1/designs/{design_id}", answer=Design)
    async def get_design(call: Call) -> Result:
        """A design"""
        return 200, await designs.get(call.conn, call.merchant_id, call.path["design_id"])

    @route.post("/v1/designs/{design_id}", answer=Design, body=DesignChange)
    async def update_design(call: Call) -> Result:
        """Change a design (name, look, active, stock, sale window; not its amounts)"""
        return 200, await designs.update(
            call.conn, call.merchant_id, call.path["design_id"], given(call.body)
        )
