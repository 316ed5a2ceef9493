"""Server-rendered pages: autoescaping on, and the page strings from gettext catalogs.

Everything a user typed (messages, names) reaches a page only through autoescaped variables, never as
markup. The language comes from the browser's Accept-Language: Chinese when it asks for zh, else English.
The strings are English msgids in the templates and page modules; `locales/zh_CN/LC_MESSAGES/messages.po`
holds their Chinese and is compiled in memory at start, so no .mo file is built (scripts/messages updates it).
"""

from __future__ import annotations

import io
from gettext import NullTranslations
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).parent / "templates"
LOCALES = Path(__file__).parent / "locales"

# Pages set a strict CSP: scripts and styles only from this origin, images also as data:/blob: URLs.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def catalog_path(locale: str) -> Path:
    return LOCALES / locale / "LC_MESSAGES" / "messages.po"


def _compiled(locale: str) -> Translations:
    """The catalog of a locale, read from its .po and compiled in memory (fuzzy entries are left out)."""
    with catalog_path(locale).open("rb") as po:
        catalog = read_po(po, locale=locale)
    mo = io.BytesIO()
    write_mo(mo, catalog)
    mo.seek(0)
    return Translations(mo)


TRANSLATIONS: dict[str, NullTranslations] = {"en": NullTranslations(), "zh": _compiled("zh_CN")}


def _environment(translations: NullTranslations) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # Old-style gettext: a translation is plain text, autoescaped like any other value.
    environment.install_gettext_translations(translations, newstyle=False)  # type: ignore[attr-defined]
    return environment


ENVIRONMENTS = {lang: _environment(translations) for lang, translations in TRANSLATIONS.items()}


def language(request: Request) -> str:
    """'zh' or 'en', by the first language of Accept-Language that we speak."""
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "en"


def translations(request: Request) -> NullTranslations:
    """The catalog of the request's language, for strings a page module sends to its script."""
    return TRANSLATIONS[language(request)]


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = language(request)
    html = ENVIRONMENTS[lang].get_template(template).render(lang=lang, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
