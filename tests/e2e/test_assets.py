"""The pages' JS and CSS are files under /static: typed, revalidated, never sniffed, nothing else served."""

from __future__ import annotations

import httpx
import pytest

ASSETS = [
    ("/static/gifts/card.js", "text/javascript"),
    ("/static/gifts/card.css", "text/css"),
    ("/static/gifts/gift.js", "text/javascript"),
    ("/static/gifts/customise.js", "text/javascript"),
    ("/static/wallet/wallet.js", "text/javascript"),
    ("/static/wallet/wallet.css", "text/css"),
    ("/static/terminal/terminal.js", "text/javascript"),
    ("/static/terminal/terminal.css", "text/css"),
]


@pytest.mark.parametrize(("path", "media_type"), ASSETS)
async def test_each_asset_is_typed_revalidated_and_answered_304_when_unchanged(
    client: httpx.AsyncClient, path: str, media_type: str
) -> None:
    first = await client.get(path)
    assert first.status_code == 200 and len(first.content) > 100
    assert first.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert first.headers["x-content-type-options"] == "nosniff"
    assert first.headers["cache-control"] == "no-cache"
    again = await client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/static/gifts/nothing.js",
        "/static/gifts/",
        "/static/terminal",
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/gifts/..%2f..%2fapp.py",
        "/static/../templates/card.html",
        "/static/gifts/../../templates/card.html",
    ],
)
async def test_nothing_but_the_assets_is_served_under_static(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 404, (path, answer.text[:200])
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "def " not in answer.text and "{%" not in answer.text


async def test_the_pages_name_the_assets_where_they_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/terminal")
    assert page.status_code == 200
    assert 'href="/static/terminal/terminal.css"' in page.text
    assert 'src="/static/terminal/terminal.js"' in page.text
    for old in ("/terminal/terminal.js", "/terminal/terminal.css"):
        assert (await client.get(old)).status_code == 404
