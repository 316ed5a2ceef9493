"""WeChat's callback URL is public and merchant ids are not secret: a push is judged by its query before its
body is read, and no more of a body is taken than WeChat ever sends (64 KB), however it is framed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.reliability.load import start_server
from tests.reliability.test_crash_and_outage import record
from tests.support.api import Merchant, create_merchant
from tests.support.raw_http import Answer, RawRequest, open_request
from tests.support.servers import LiveServer
from tests.support.wechat_callbacks import set_up_account, signed_query

MB = 1_048_576
STREAM = 200 * MB
CHUNK = b"x" * 65_536


def callback_path(merchant: Merchant, query: dict[str, str]) -> str:
    return f"/wechat/callback/{merchant.id}?" + urlencode(query)


async def test_a_forged_callback_is_answered_while_its_body_is_still_being_sent(
    client: httpx.AsyncClient, server: LiveServer, merchant: Merchant
) -> None:
    await set_up_account(client, merchant)
    cases = [
        (signed_query(token="guessedToken"), "wechat_signature_invalid"),
        ({"timestamp": str(int(time.time())), "nonce": "1"}, "wechat_signature_invalid"),  # unsigned
        ({**signed_query(), "encrypt_type": "aes"}, "wechat_signature_invalid"),  # no EncodingAESKey set
        (signed_query(seconds_ago=3600), "wechat_callback_stale"),
    ]
    for query, code in cases:
        request = await open_request(
            server.port, "POST", callback_path(merchant, query), {"Content-Type": "text/xml"}
        )
        try:
            await request.send(b"<xml><ToUserName>")  # and no more: the body never ends
            answer = await asyncio.wait_for(request.answer, 8)
        finally:
            await request.close()
        assert (answer.status, answer.json()["code"]) == (403, code), query
        assert answer.headers["connection"] == "close"


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


async def stream(port: int, path: str, pid: int) -> tuple[Answer, RawRequest, int]:
    """200 MB of chunked body as fast as the server takes it, the server's RSS sampled meanwhile: the
    answer, the request (what was sent) and the highest RSS seen."""
    request = await open_request(port, "POST", path, {"Content-Type": "text/xml"})
    peak = rss_bytes(pid)

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_bytes(pid))
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    try:
        while request.sent < STREAM and not request.answer.done() and await request.send(CHUNK):
            # A write the kernel takes at once does not yield, so without this the answer would wait unread
            # in the socket until the server, done draining, closes it: and Linux drops unread data on the
            # reset that follows (seen under load as ConnectionResetError instead of the answer).
            await asyncio.sleep(0)
        await request.finish()
        answer = await asyncio.wait_for(request.answer, 30)
        await asyncio.sleep(0.3)  # what the server might still be holding
    finally:
        sampler.cancel()
        await request.close()
    return answer, request, max(peak, rss_bytes(pid))


@pytest.mark.slow
async def test_a_200_mb_chunked_callback_body_is_refused_early_and_the_server_does_not_grow(
    database_url: str, tmp_path: Path, artifacts: Path
) -> None:
    server = start_server(database_url, tmp_path / "server.log")
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            merchant = await create_merchant(client, "Callback Brand")
            await set_up_account(client, merchant)
        assert server.proc is not None
        pid = server.proc.pid
        baseline = rss_bytes(pid)
        figures: dict[str, object] = {"baseline_rss_mb": round(baseline / MB, 1)}
        for case, query, status, code in (
            ("forged", signed_query(token="guessedToken"), 403, "wechat_signature_invalid"),
            ("signed", signed_query(), 413, "payload_too_large"),
        ):
            answer, request, peak = await stream(server.port, callback_path(merchant, query), pid)
            figures[case] = {
                "status": answer.status,
                "answered_after_mb": round((request.answered_after or 0) / MB, 1),
                "sent_mb": round(request.sent / MB, 1),
                "rss_growth_mb": round((peak - baseline) / MB, 1),
            }
            assert (answer.status, answer.json()["code"]) == (status, code), figures
            # Answered once the server had read at most its 64 KB and the 8 MB it drains (so that the client
            # reads the answer), with the sockets' buffers full; the rest was never taken.
            assert request.answered_after is not None
            assert request.answered_after < 64 * MB, figures
            assert request.sent < STREAM, figures
            assert peak - baseline < 50 * MB, figures
        figures["vm_hwm_growth_mb"] = round((rss_bytes(pid, "VmHWM") - baseline) / MB, 1)
        record(artifacts, "callback_body", figures)
    finally:
        server.kill()
