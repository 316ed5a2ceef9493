"""Server-rendered pages: one Jinja environment, autoescaping on, and the page strings in two languages.

Everything a user typed (messages, names) reaches a page only through autoescaped variables, never as
markup. The language comes from the browser's Accept-Language: Chinese when it asks for zh, else English.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).parent / "templates"

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# Pages set a strict CSP: scripts and styles only from this origin, images also as data:/blob: URLs.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def language(request: Request) -> str:
    """'zh' or 'en', by the first language of Accept-Language that we speak."""
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "en"


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = language(request)
    html = environment.get_template(template).render(lang=lang, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
