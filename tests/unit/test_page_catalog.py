"""The pages speak Chinese from a catalog: every string they use has a translation there, none is stale."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from starlette.requests import Request

from giftcards.web import templating

ROOT = Path(__file__).resolve().parents[2]
Key = tuple[str | None, str]  # (msgctxt, msgid)


def _used() -> set[Key]:
    """What `scripts/messages` extracts: every msgid in the templates and page modules."""
    with (templating.LOCALES / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = extract_from_dir(ROOT, method_map, options_map)
    return {(context, _singular(message)) for _, _, message, _, context in found}


def _catalog() -> dict[Key, tuple[str, bool]]:
    with templating.catalog_path("zh_CN").open("rb") as po:
        catalog = read_po(po)
    return {(m.context, _singular(m.id)): (_singular(m.string), m.fuzzy) for m in catalog if m.id}


def _singular(message: str | tuple[str, ...]) -> str:
    """A plural message by its singular form (ngettext's first argument)."""
    return message if isinstance(message, str) else message[0]


def test_every_page_string_has_a_chinese_translation() -> None:
    used = _used()
    catalog = _catalog()
    assert len(used) > 100  # the extraction found the pages
    missing = sorted((key for key in used if not catalog.get(key, ("", False))[0]), key=str)
    fuzzy = sorted((key for key in used if catalog.get(key, ("", False))[1]), key=str)
    assert not missing, f"run scripts/messages and translate: {missing}"
    assert not fuzzy, f"check these translations and drop their fuzzy flag: {fuzzy}"


def test_the_catalog_holds_only_strings_the_pages_use() -> None:
    stale = sorted(set(_catalog()) - _used(), key=str)
    assert not stale, f"run scripts/messages to drop them: {stale}"


def _request(accept_language: str) -> Request:
    return Request({"type": "http", "headers": [(b"accept-language", accept_language.encode())]})


def test_chinese_for_any_zh_tag_else_english() -> None:
    assert templating.language(_request("zh-TW,en;q=0.5")) == "zh"
    assert templating.language(_request("en-GB,zh;q=0.9")) == "en"
    assert templating.language(_request("fr, ZH-cn")) == "zh"
    assert templating.language(_request("fr")) == "en"
    assert templating.language(_request("")) == "en"


def test_a_page_reads_the_catalog_of_its_language() -> None:
    chinese = templating.translations(_request("zh-CN"))
    assert chinese.gettext("Balance") == "余额"
    assert chinese.pgettext("history", "Refunded") == "退款"
    assert chinese.gettext("Refunded") == "已退款"
    assert templating.translations(_request("en")).gettext("Balance") == "Balance"
