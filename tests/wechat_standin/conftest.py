"""Fixtures for the stand-in's own tests: a running stand-in, a wechatpy client on it, a push receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .client import StandinWeChatClient, standin_wechat_client
from .server import ThreadedServer, WeChatStandin


@pytest.fixture
def standin() -> Iterator[WeChatStandin]:
    threads_before = set(threading.enumerate())
    with WeChatStandin() as running:
        yield running
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not leftover, f"threads left behind: {leftover}"


@pytest.fixture
def client(standin: WeChatStandin) -> Iterator[StandinWeChatClient]:
    wechat = standin_wechat_client(standin.base_url, standin.appid, standin.secret, timeout=2)
    yield wechat
    wechat._http.close()


@dataclass
class Received:
    query: dict[str, str]
    body: str


class Receiver:
    """The service's callback URL, played by a recorder that answers as the test says."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.reply = "success"
        self.status = 200
        self.hang = 0.0  # seconds to sit on each request before answering
        self.server = ThreadedServer(Starlette(routes=[Route("/wechat", self._endpoint, methods=["POST"])]))

    @property
    def url(self) -> str:
        return self.server.url + "wechat"

    async def _endpoint(self, request: Request) -> Response:
        self.received.append(Received(dict(request.query_params), (await request.body()).decode()))
        if self.hang:
            await self.server.pause(self.hang)
        return Response(self.reply, status_code=self.status, media_type="text/plain")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recorder = Receiver()
    recorder.server.start()
    yield recorder
    recorder.server.stop()
