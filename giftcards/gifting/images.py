"""Uploaded images (design covers, gifters' own photos): refused unless they are what they claim to be.

An upload is accepted only when its declared type is JPEG, PNG or WebP, its first bytes say the same,
Pillow (restricted to that one decoder) decodes it fully, and its declared size is at most
MAX_SOURCE_PIXELS. Pillow's own decompression-bomb limit is lowered to the same figure, so an image that
declares more pixels is refused before any pixel is decoded. What is stored is never the upload itself
but a re-encoding of the decoded pixels: orientation applied, EXIF/ICC/text metadata gone, at most
MAX_SIDE pixels a side. A refusal raises before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass
from typing import get_args

import asyncpg
from PIL import Image, ImageOps

from giftcards.core import ids
from giftcards.core.errors import DomainError
from giftcards.gifting import shapes
from giftcards.gifting.lookups import fetch_by_id
from giftcards.gifting.row_views import view_of
from giftcards.gifting.shapes import ImagePurpose

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_SOURCE_PIXELS = 40_000_000  # a 48-megapixel phone photo is downscaled by the phone before upload
MAX_SOURCE_SIDE = 12_000
MAX_SIDE = 1600
JPEG_QUALITY = 85
MEDIA_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
PURPOSES = get_args(ImagePurpose)

# Pillow warns above this many pixels and refuses above twice as many; both count as a refusal here.
Image.MAX_IMAGE_PIXELS = MAX_SOURCE_PIXELS

_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}
# A decode may briefly take a few hundred megabytes (40 megapixels, 4 bytes each): two at a time per process.
_DECODING = threading.BoundedSemaphore(2)


@dataclass(frozen=True)
class CleanImage:
    media_type: str  # image/jpeg or image/png
    width: int
    height: int
    data: bytes

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.data).digest()


def sniff(data: bytes) -> str | None:
    """The format the bytes say they are, whatever the file was called."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _refuse(detail: str) -> DomainError:
    return DomainError("image_invalid", detail, accepted=sorted(MEDIA_TYPES))


def sanitize(data: bytes, media_type: str) -> CleanImage:
    """Decode and re-encode an upload, or raise DomainError (image_too_large / image_invalid)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise DomainError(
            "image_too_large", f"an image may be at most {MAX_UPLOAD_BYTES} bytes", limit=MAX_UPLOAD_BYTES
        )
    expected = MEDIA_TYPES.get(media_type)
    if expected is None:
        raise _refuse("send a JPEG, PNG or WebP image")
    if not data:
        raise _refuse("the file is empty")
    if sniff(data) != expected:
        raise _refuse(f"the file is not a {_NAMES[expected]} image")
    try:
        with _DECODING:
            picture = _decode(data, expected)
    except DomainError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse(f"the image declares more than {MAX_SOURCE_PIXELS} pixels") from None
    except Exception:  # an untrusted decoder input: any failure is a refusal, never a 500
        raise _refuse(f"the {_NAMES[expected]} data could not be decoded") from None
    return _encode(picture)


def _decode(data: bytes, expected: str) -> Image.Image:
    with Image.open(io.BytesIO(data), formats=[expected]) as opened:
        if opened.format != expected:
            raise _refuse(f"the file is not a {_NAMES[expected]} image")
        width, height = opened.size
        if width * height > MAX_SOURCE_PIXELS or max(width, height) > MAX_SOURCE_SIDE:
            raise _refuse(f"the image declares more than {MAX_SOURCE_PIXELS} pixels")
        if expected == "JPEG":
            opened.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decode at a reduced scale where JPEG allows
        opened.load()
        upright = ImageOps.exif_transpose(opened) or opened
        alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
        picture = upright.convert("RGBA" if alpha else "RGB")
    picture.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    # A fresh image from the bare pixels: no EXIF, ICC profile, text chunks or other metadata survive.
    return Image.frombytes(picture.mode, picture.size, picture.tobytes())


def _encode(picture: Image.Image) -> CleanImage:
    if picture.mode == "RGBA":
        out = io.BytesIO()
        picture.save(out, "PNG", optimize=True)
        if out.tell() <= MAX_UPLOAD_BYTES:
            return CleanImage("image/png", picture.width, picture.height, out.getvalue())
        flattened = Image.new("RGB", picture.size, (255, 255, 255))
        flattened.paste(picture, mask=picture.getchannel("A"))
        picture = flattened
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return CleanImage("image/jpeg", picture.width, picture.height, out.getvalue())


# -- storage ---------------------------------------------------------------------------------------


async def store(
    conn: asyncpg.Connection,
    merchant_id: str,
    purpose: str,
    image: CleanImage,
    *,
    session_id: str | None = None,
) -> shapes.Image:
    if purpose not in PURPOSES:
        raise DomainError("invalid_request", "purpose is cover or photo")
    row = await conn.fetchrow(
        """INSERT INTO images (merchant_id, id, purpose, media_type, width, height, data, sha256, session_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           RETURNING merchant_id, id, purpose, media_type, width, height, length(data) AS bytes,
                     created_at""",
        merchant_id,
        ids.new_id("img"),
        purpose,
        image.media_type,
        image.width,
        image.height,
        image.data,
        image.sha256,
        session_id,
    )
    return image_view(row)


async def fetch(conn: asyncpg.Connection, merchant_id: str, image_id: str) -> asyncpg.Record:
    query = "SELECT *, length(data) AS bytes FROM images WHERE merchant_id = $1 AND id = $2"
    row = await fetch_by_id(conn, query, merchant_id, image_id, "img")
    if row is None:
        raise DomainError("image_not_found", "no such image")
    return row


async def data_of(conn: asyncpg.Connection, merchant_id: str, image_id: str | None) -> bytes | None:
    if image_id is None:
        return None
    value = await conn.fetchval(
        "SELECT data FROM images WHERE merchant_id = $1 AND id = $2", merchant_id, image_id
    )
    return bytes(value) if value is not None else None


async def purge_unused_photos(
    conn: asyncpg.Connection, *, older_than_hours: int = 24, limit: int = 500
) -> int:
    """Photos uploaded for a gift that was never bought. A photo a gift names is never deleted: the
    NOT EXISTS skips it, and the foreign key refuses the delete if a purchase races this one."""
    try:
        result = await conn.execute(
            """DELETE FROM images i
               WHERE (i.merchant_id, i.id) IN (
                   SELECT merchant_id, id FROM images
                   WHERE purpose = 'photo' AND created_at < now() - make_interval(hours => $1)
                   ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                 AND NOT EXISTS (SELECT 1 FROM gifts g
                                 WHERE g.merchant_id = i.merchant_id AND g.photo_id = i.id)""",
            older_than_hours,
            limit,
        )
    except asyncpg.ForeignKeyViolationError:
        return 0  # a purchase took one of them meanwhile; the next pass tries again
    return int(result.split()[-1])


def image_view(row: asyncpg.Record) -> shapes.Image:
    return view_of(shapes.Image, row)
