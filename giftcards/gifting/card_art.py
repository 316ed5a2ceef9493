"""The card picture (PNG) a gifter previews and shares: design colours, cover or own photo, amount,
message and names, drawn with Pillow.

Text is drawn with a CJK-capable font when the system has one (Debian's fonts-noto-cjk), else with
Pillow's built-in font; characters the font cannot draw (most emoji) are left out of the picture rather
than drawn as boxes; the pages show the message itself. Renders are cached: a gift's picture never
changes, so showing it again costs a hash of its pictures and a dictionary lookup.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

WIDTH, HEIGHT = 720, 960
_MARGIN = 40
_PICTURE_BOX = (_MARGIN, _MARGIN, WIDTH - _MARGIN, 520)
_CACHE_SIZE = 64
_CACHE: OrderedDict[tuple[CardArt, bytes | None, bytes | None, int], bytes] = OrderedDict()
# FreeType faces are not safe to use from two threads at once, and renders run in worker threads.
_LOCK = threading.Lock()

# (path, face index): index 2 of the Noto CJK collections is Simplified Chinese.
_FONT_CANDIDATES = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-{weight}.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-{weight}.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/System/Library/Fonts/PingFang.ttc", 0),
)
_MOTIFS = {
    "qixi": ("七夕", "Qixi"),
    "520": ("520", "520"),
    "valentines": ("♥", "Love"),
    "spring_festival": ("福", "Spring"),
    "birthday": ("生日快乐", "Happy Birthday"),
    "thank_you": ("谢谢", "Thank you"),
    "other": ("礼", "Gift"),
}

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class CardArt:
    """Everything the picture shows; hashable, so equal requests share one cached render."""

    background_color: str
    accent_color: str
    text_color: str
    occasion: str
    title: str
    amount_text: str
    message: str = ""
    sender_name: str = ""
    recipient_name: str = ""
    cover: bytes | None = None  # the design's stored (already sanitised) cover
    photo: bytes | None = None  # the gifter's stored (already sanitised) photo, shown instead of the cover


def render_png(art: CardArt, *, width: int = WIDTH) -> bytes:
    """The card as PNG, `width` pixels wide (full size, or smaller for a thumbnail)."""
    width = min(max(width, 120), WIDTH)
    # The cache keys on digests, so it never holds the (up to megabytes of) cover and photo bytes.
    key = (replace(art, cover=None, photo=None), _digest(art.cover), _digest(art.photo), width)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
        rendered = _render(art, width)
        _CACHE[key] = rendered
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return rendered


def _digest(data: bytes | None) -> bytes | None:
    return None if data is None else hashlib.sha256(data).digest()


def _render(art: CardArt, width: int) -> bytes:
    card = _gradient((WIDTH, HEIGHT), _rgb(art.background_color), _rgb(art.accent_color))
    card.paste(*_picture(art))
    draw = ImageDraw.Draw(card)
    ink = _rgb(art.text_color)
    draw.text(
        (_MARGIN, 548), _drawable(art.amount_text, _font(64, bold=True)), font=_font(64, bold=True), fill=ink
    )
    title = _drawable(art.title, _font(26))
    draw.text((WIDTH - _MARGIN, 585), title, font=_font(26), fill=ink, anchor="ra")
    y = 650
    if art.recipient_name:
        draw.text((_MARGIN, y), _drawable(f"To {art.recipient_name}", _font(32)), font=_font(32), fill=ink)
        y += 52
    for line in _wrap(art.message, _font(30), WIDTH - 2 * _MARGIN, max_lines=5):
        draw.text((_MARGIN, y), line, font=_font(30), fill=ink)
        y += 42
    if art.sender_name:
        sender = _drawable(f"— {art.sender_name}", _font(30))
        draw.text((WIDTH - _MARGIN, HEIGHT - _MARGIN), sender, font=_font(30), fill=ink, anchor="rd")
    if width != WIDTH:
        card = card.resize((width, round(HEIGHT * width / WIDTH)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    card.save(out, "PNG", optimize=width < WIDTH)
    return out.getvalue()


def _picture(art: CardArt) -> tuple[Image.Image, tuple[int, int], Image.Image]:
    left, top, right, bottom = _PICTURE_BOX
    size = (right - left, bottom - top)
    source = art.photo or art.cover
    if source is not None:
        with Image.open(io.BytesIO(source)) as stored:
            picture = ImageOps.fit(stored.convert("RGB"), size, Image.Resampling.LANCZOS)
    else:
        picture = _gradient(size, _rgb(art.accent_color), _rgb(art.background_color), horizontal=True)
        zh, en = _MOTIFS.get(art.occasion, _MOTIFS["other"])
        font = _font(150, bold=True)
        motif = zh if _drawable(zh, font) == zh else en
        if _drawable(motif, font) != motif:
            font, motif = _font(90, bold=True), en
        ImageDraw.Draw(picture).text(
            (size[0] // 2, size[1] // 2), motif, font=font, fill=_rgb(art.text_color), anchor="mm"
        )
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, size[0] - 1, size[1] - 1), radius=28, fill=255)
    return picture, (left, top), mask


def _gradient(
    size: tuple[int, int], start: tuple[int, int, int], end: tuple[int, int, int], *, horizontal: bool = False
) -> Image.Image:
    ramp = Image.linear_gradient("L")
    if horizontal:
        ramp = ramp.rotate(90)
    mask = ramp.resize(size)
    return Image.composite(Image.new("RGB", size, end), Image.new("RGB", size, start), mask)


def _rgb(color: str) -> tuple[int, int, int]:
    value = int(color.lstrip("#"), 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


@functools.lru_cache(maxsize=32)
def _font(size: int, *, bold: bool = False) -> Font:
    for path in _font_paths(bold):
        if Path(path[0]).is_file():
            try:
                return ImageFont.truetype(path[0], size, index=path[1])
            except OSError:
                continue
    return ImageFont.load_default(size=size)


def _font_paths(bold: bool) -> list[tuple[str, int]]:
    configured = os.environ.get("GIFTCARDS_CARD_FONT")
    paths = [(configured, 0)] if configured else []
    return paths + [
        (path.format(weight="Bold" if bold else "Regular"), index) for path, index in _FONT_CANDIDATES
    ]


def has_cjk_font() -> bool:
    return isinstance(_font(20), ImageFont.FreeTypeFont) and _drawable("七夕", _font(20)) == "七夕"


def _drawable(text: str, font: Font) -> str:
    return "".join(ch for ch in text if ch.isspace() or _has_glyph(font, ch))


@functools.lru_cache(maxsize=8192)
def _has_glyph(font: Font, ch: str) -> bool:
    """A glyph the font lacks renders as its 'missing' box, identical to that of a private-use point."""
    return _glyph_bitmap(font, ch) != _missing(font)


@functools.lru_cache(maxsize=64)
def _missing(font: Font) -> bytes:
    return _glyph_bitmap(font, "\U0010fffd")


def _glyph_bitmap(font: Font, ch: str) -> bytes:
    size = int(getattr(font, "size", 20)) * 2
    probe = Image.new("L", (size, size))
    ImageDraw.Draw(probe).text((size // 4, size // 4), ch, font=font, fill=255)
    return probe.tobytes()


def _wrap(text: str, font: Font, width: int, *, max_lines: int) -> list[str]:
    """Greedy wrapping that works for Chinese (any character may break) and keeps Latin words whole."""
    lines: list[str] = []
    for paragraph in _drawable(text, font).split("\n"):
        line = ""
        for ch in paragraph:
            if font.getlength(line + ch) <= width:
                line += ch
                continue
            cut = line.rfind(" ")
            if ch != " " and cut > 0 and line[cut + 1 :].isascii():
                lines.append(line[:cut])
                line = line[cut + 1 :] + ch
            else:
                lines.append(line)
                line = ch.lstrip()
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:-1] + "…"
    return lines
