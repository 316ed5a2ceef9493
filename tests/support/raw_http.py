"""HTTP/1.1 by hand over asyncio streams, for clients no HTTP library would be: ones that send their
body a byte at a time, stall halfway, or stream far more than any limit, reading the answer meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RawRequest:
    """One request on its own connection: headers sent at once, the body sent by the caller."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sent: int = 0  # body bytes written so far (the payload of the chunks)
    answer: asyncio.Task[Answer] = field(init=False)
    answered_after: int | None = None  # body bytes written when the answer's status line had arrived

    def __post_init__(self) -> None:
        self.answer = asyncio.create_task(self._read_answer())

    async def send(self, data: bytes, *, chunked: bool = True) -> bool:
        """Write part of the body; False once the server has closed the connection."""
        framed = b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
        try:
            self.writer.write(framed)
            await self.writer.drain()
        except (ConnectionError, OSError):
            return False
        self.sent += len(data)
        return True

    async def finish(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()

    async def close(self) -> None:
        self.answer.cancel()
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    async def _read_answer(self) -> Answer:
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed without an answer")
        self.answered_after = self.sent
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(int(status_line.split()[1]), headers, body)


async def open_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    content_length: int | None = None,
) -> RawRequest:
    """Send the request line and headers: chunked unless `content_length` is given."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    headers = headers or {}
    framing = (
        {"Transfer-Encoding": "chunked"}
        if content_length is None
        else {"Content-Length": str(content_length)}
    )
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    lines += [f"{k}: {v}" for k, v in framing.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    return RawRequest(reader, writer)


async def trickle(request: RawRequest, *, interval: float = 1.0, until: float, chunked: bool = True) -> None:
    """One byte every `interval` seconds until answered, closed, or the monotonic time `until`."""
    while time.monotonic() < until and not request.answer.done():
        if not await request.send(b"x", chunked=chunked):
            return
        await asyncio.wait([request.answer], timeout=interval)
