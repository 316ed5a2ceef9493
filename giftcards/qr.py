"""QR images of payloads, cached because the same card's QR is requested again and again.

Error correction M (15% of the symbol recoverable) tolerates a scratched or glare-hit phone screen while
keeping a 151-character signed payload at version 6; border 4 is the quiet zone the standard asks for.
"""

from __future__ import annotations

import functools
import io

import qrcode
import qrcode.constants
import qrcode.image.pil
import qrcode.image.svg

MAX_PAYLOAD_LENGTH = 512
MAX_BOX_SIZE = 40
_CACHE_SIZE = 2048
_BORDER = 4


def _check(payload: str) -> None:
    if not payload or len(payload) > MAX_PAYLOAD_LENGTH:
        raise ValueError(f"a QR payload has 1 to {MAX_PAYLOAD_LENGTH} characters")


def _build(payload: str, box_size: int = 10) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box_size, border=_BORDER)
    code.add_data(payload)
    code.make(fit=True)
    return code


def qr_version(payload: str) -> int:
    """The QR version (1-40) the payload needs at error correction M."""
    _check(payload)
    return _build(payload).version


def render_svg(payload: str) -> bytes:
    """A standalone SVG document drawing the code as a single path."""
    _check(payload)
    return _render_svg(payload)


def render_png(payload: str, box_size: int = 8) -> bytes:
    """A black-and-white PNG with `box_size` pixels per module; the size is bounded to cap rendering work."""
    _check(payload)
    if not 1 <= box_size <= MAX_BOX_SIZE:
        raise ValueError(f"box_size is 1 to {MAX_BOX_SIZE} pixels")
    return _render_png(payload, box_size)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _render_svg(payload: str) -> bytes:
    buffer = io.BytesIO()
    _build(payload).make_image(image_factory=qrcode.image.svg.SvgPathImage).save(buffer)
    return buffer.getvalue()


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _render_png(payload: str, box_size: int) -> bytes:
    buffer = io.BytesIO()
    _build(payload, box_size).make_image(image_factory=qrcode.image.pil.PilImage).save(buffer)
    return buffer.getvalue()
