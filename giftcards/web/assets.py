"""The pages' JavaScript and CSS, served as files under /static rather than declared as API operations.

Browsers revalidate each file (ETag, no-cache), so a till or a page picks up a new release at once and
otherwise gets a 304; nosniff keeps a file from being run as anything other than its declared type.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

FOLDER = Path(__file__).parent / "static"
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
# Named here, not guessed from mime.types: Python 3.11's own table calls .js application/javascript.
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class Assets(StaticFiles):
    """StaticFiles with the headers every asset is sent with, and only JS and CSS (else a 404 problem)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        media_type = TYPES.get(PurePosixPath(path).suffix)
        if media_type is None:
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["content-type"] = media_type
        response.headers.update(HEADERS)
        return response


def mount() -> Mount:
    return Mount("/static", app=Assets(directory=FOLDER), name="static")
