"""What the operator reads of a failure: a 500 is one log line, with its request id and the traceback; a
client that goes away mid-request is no error at all. Read from `giftcards serve`'s own output."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.reliability.load import start_server
from tests.support.api import create_merchant
from tests.support.raw_http import open_request
from tests.support.servers import eventually


def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every line the server wrote (JSON; anything else kept as its text)."""
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            lines.append({"text": text})
    return lines


def with_traceback(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "Traceback" in json.dumps(line)]


@pytest.mark.slow
async def test_a_500_is_one_log_line_with_its_request_id_and_a_vanished_client_is_no_error(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    server = start_server(database_url, log)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            merchant = await create_merchant(client, "Logged Brand")
            # A client that sends a tenth of its body and goes away.
            gone = await open_request(
                server.port,
                "POST",
                "/v1/cards",
                {**merchant.headers, "Content-Type": "application/json", "X-Request-ID": "gone-0001"},
                content_length=1000,
            )
            await gone.send(b'{"amount": ', chunked=False)
            await asyncio.sleep(0.2)
            await gone.close()
            await eventually(lambda: any(line.get("request_id") == "gone-0001" for line in log_lines(log)))

            # A real failure underneath a real endpoint: the table it reads is gone.
            await db.execute("ALTER TABLE designs RENAME TO designs_mislaid")
            failed = await client.get(
                "/v1/designs", headers={**merchant.headers, "X-Request-ID": "boom-0001"}
            )
            assert failed.status_code == 500 and failed.json()["code"] == "internal_error"
            assert "designs_mislaid" not in failed.text and "Traceback" not in failed.text
            await eventually(
                lambda: any(
                    line.get("status") == 500 and line.get("request_id") == "boom-0001"
                    for line in log_lines(log)
                )
            )
    finally:
        server.kill()
    lines = log_lines(log)
    traced_lines = with_traceback(lines)  # one, not Starlette's and uvicorn's each
    assert len(traced_lines) == 1, [(line.get("logger"), line.get("request_id")) for line in traced_lines]
    (traced,) = traced_lines
    assert (traced["level"], traced["request_id"]) == ("error", "boom-0001")
    assert "UndefinedTableError" in traced["exception"]
    gone_lines = [line for line in lines if line.get("request_id") == "gone-0001"]
    assert [(line["logger"], line["status"]) for line in gone_lines] == [("giftcards.access", 499)], (
        gone_lines
    )
    assert [line for line in lines if line.get("level") == "error"] == [traced]
