"""Liveness, readiness and the API's own description."""

from __future__ import annotations

from giftcards.db.migrations import MigrationError, pending_migrations
from giftcards.db.pool import is_unavailable
from giftcards.web.calls import Call, Operations, Result
from giftcards.web.routing import Api

HEALTH = {"type": "object", "properties": {"status": {"type": "string"}, "detail": {"type": "string"}}}


def register(api: Api) -> None:
    route = Operations(api, tag="system")

    @route.get("/healthz", answer=HEALTH, uses_db=False)
    async def healthz(call: Call) -> Result:
        """The process is alive"""
        return 200, {"status": "ok"}

    @route.get("/readyz", responses={200: HEALTH, 503: HEALTH}, uses_db=False)
    async def readyz(call: Call) -> Result:
        """The database is reachable and its schema current"""
        rt = call.rt
        try:
            async with rt.pool.acquire(timeout=rt.settings.db_timeout) as conn:
                pending = await pending_migrations(conn, call.request.app.state.migrations)
        except MigrationError as exc:
            return 503, {"status": "unavailable", "detail": str(exc)}
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return 503, {"status": "unavailable", "detail": "the database does not answer"}
        if pending:
            return 503, {"status": "unavailable", "detail": f"{len(pending)} migration(s) pending"}
        return 200, {"status": "ready"}

    @route.get("/openapi.json", answer={"type": "object"}, uses_db=False)
    async def openapi(call: Call) -> Result:
        """This document"""
        return 200, call.request.app.state.openapi
