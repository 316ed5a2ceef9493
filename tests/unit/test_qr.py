from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import pytest
from PIL import Image, ImageDraw

from giftcards.core import ids
from giftcards.qr import images as qr
from giftcards.qr.images import qr_version, render_png, render_svg
from giftcards.qr.signing import KeySet, SigningKey

SVG = "{http://www.w3.org/2000/svg}"


def _payload() -> str:
    key = SigningKey.generate()
    return KeySet([key], key.kid).sign("mer_nbswy3dpo5xxe3de", "card_7777777777777777", 57_600_000)


def test_signed_payload_needs_version_6() -> None:
    """A 151-character signed payload is alphanumeric-mode QR version 6 (41 x 41 modules) at ECC M.

    Version 6-M holds up to 154 alphanumeric characters, version 5-M only 122.
    """
    payload = _payload()
    assert len(payload) == 151
    assert qr_version(payload) == 6
    key = SigningKey.generate()
    passed_on = KeySet([key], key.kid).sign("mer_nbswy3dpo5xxe3de", "card_7777777777777777", 2**32 - 1, 65535)
    assert len(passed_on) == 154 and qr_version(passed_on) == 6  # version 2, with a generation
    assert qr_version("A" * 154) == 6
    assert qr_version("A" * 155) == 7
    assert qr_version("A" * 122) == 5


def test_svg_is_a_single_path_document() -> None:
    payload = _payload()
    svg = render_svg(payload)
    assert svg.startswith(b"<?xml")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    # 41 modules + 2 * 4 quiet zone
    assert root.get("viewBox") == "0 0 49 49"
    paths = root.findall(f"{SVG}path")
    assert len(paths) == 1
    assert paths[0].get("d", "").startswith("M")


def test_png_decodes_to_a_square_image() -> None:
    payload = _payload()
    png = render_png(payload)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == (49 * 8, 49 * 8)
        assert image.getpixel((0, 0)) == 255  # quiet zone is white
        assert image.getpixel((4 * 8, 4 * 8)) == 0  # finder pattern corner is black
    with Image.open(io.BytesIO(render_png(payload, box_size=2))) as image:
        assert image.size == (98, 98)


def test_repeated_calls_return_the_cached_object() -> None:
    payload = _payload()
    assert render_svg(payload) is render_svg(payload)
    assert render_png(payload) is render_png(payload)
    assert render_png(payload, 3) is render_png(payload, 3)
    assert render_png(payload, 3) is not render_png(payload)


def test_payload_and_box_size_limits() -> None:
    assert qr_version("A" * 512) > 6
    for bad in ("", "A" * 513):
        with pytest.raises(ValueError, match="512"):
            render_svg(bad)
        with pytest.raises(ValueError, match="512"):
            render_png(bad)
        with pytest.raises(ValueError, match="512"):
            qr_version(bad)
    for box_size in (0, -1, 41):
        with pytest.raises(ValueError, match="box_size"):
            render_png("GC1", box_size)


def _svg_to_image(svg: bytes) -> Image.Image:
    """Rasterise our own SVG (a white square and one path of unit-high runs) at 8 pixels per module."""
    text = svg.decode()
    size = int(re.search(r'viewBox="0 0 (\d+) \d+"', text)[1])  # type: ignore[index]
    image = Image.new("L", (size * 8, size * 8), 255)
    draw = ImageDraw.Draw(image)
    for x, y, width in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", text):
        left, top = int(x) * 8, int(y) * 8
        draw.rectangle([left, top, left + int(width) * 8 - 1, top + 7], fill=0)
    return image


def test_a_real_reader_decodes_both_images_to_the_payload() -> None:
    """Read back with ZXing (zxing-cpp), so a broken mask or path writer cannot pass unnoticed."""
    import zxingcpp

    key = SigningKey.generate()
    keyset = KeySet([key], key.kid)
    for _ in range(5):
        payload = keyset.sign(ids.new_id("mer"), ids.new_id("card"), step=123_456)
        png = Image.open(io.BytesIO(qr.render_png(payload)))
        for image in (png.convert("L"), _svg_to_image(qr.render_svg(payload))):
            results = zxingcpp.read_barcodes(image)
            assert [r.text for r in results] == [payload]
