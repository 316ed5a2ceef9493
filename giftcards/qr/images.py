"""QR images of payloads, cached because the same card's QR is requested again and again.

Error correction M (15% of the symbol recoverable) tolerates a scratched or glare-hit phone screen while
keeping a 151-character signed payload at version 6; border 4 is the quiet zone the standard asks for.

Speed, since a card page asks for a fresh rotating code every half minute: the mask pattern is fixed
(every mask is valid for a reader; scoring all eight for the "best" one is three quarters of the qrcode
package's time), and the SVG path is written straight from the module matrix, one run of dark modules
per rectangle, instead of through the package's per-module SVG image.
"""

from __future__ import annotations

import functools
import io

import qrcode
import qrcode.constants
import qrcode.image.pil

MAX_PAYLOAD_LENGTH = 512
MAX_BOX_SIZE = 40
_CACHE_SIZE = 2048
_BORDER = 4
_MASK = 2  # vertical stripes, x mod 3 == 0: cheap, and no worse for readers than the others


def _check(payload: str) -> None:
    if not payload or len(payload) > MAX_PAYLOAD_LENGTH:
        raise ValueError(f"a QR payload has 1 to {MAX_PAYLOAD_LENGTH} characters")


def _build(payload: str, box_size: int = 10) -> qrcode.QRCode:
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=box_size,
        border=_BORDER,
        mask_pattern=_MASK,
    )
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
    matrix = _build(payload).get_matrix()  # includes the quiet zone
    size = len(matrix)
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < size:
            if not row[x]:
                x += 1
                continue
            start = x
            while x < size and row[x]:
                x += 1
            runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {size} {size}" width="{size * 10}" height="{size * 10}" shape-rendering="crispEdges">'
        f'<rect width="{size}" height="{size}" fill="#fff"/><path fill="#000" d="{"".join(runs)}"/></svg>'
    ).encode()


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _render_png(payload: str, box_size: int) -> bytes:
    buffer = io.BytesIO()
    _build(payload, box_size).make_image(image_factory=qrcode.image.pil.PilImage).save(buffer)
    return buffer.getvalue()
