"""What every browser test watches on its pages."""

from __future__ import annotations

from playwright.async_api import ConsoleMessage, Page


def watch(page: Page) -> list[str]:
    """Script errors and console errors (a CSP violation shows up as one). Refusals a page expects
    (402, 409 …) are logged by Chromium as failed loads; those are not problems of the page."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource: the server"):
            problems.append(message.text)

    page.on("console", console)
    return problems
