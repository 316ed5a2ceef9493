"""The service under real uvicorn on 127.0.0.1: in a thread of this process, or as its own process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from giftcards.app import create_app
from giftcards.cli import uvicorn_proxy_options
from giftcards.config import Settings
from tests.support.uvicorn_thread import listening_socket, serve_in_thread


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `condition()` holds, for what the server does after answering: it writes a request's
    access line after sending the response, in its own thread, so a client can hold the response first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not so after {timeout} s")
        await asyncio.sleep(0.01)


class LiveServer:
    """create_app(settings) served by uvicorn in a background thread, lifespan and all."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        sock = listening_socket("127.0.0.1")
        self.port = sock.getsockname()[1]
        self._server, self._thread = serve_in_thread(
            self.app,
            sock,
            within=15,
            lifespan="on",
            timeout_graceful_shutdown=2,
            **uvicorn_proxy_options(self.settings),  # as `giftcards serve` runs it
        )
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`giftcards serve` as a separate OS process (for two-process, kill -9 and SIGTERM tests)."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        port: int | None = None,
        log_path: Path | None = None,
        options: tuple[str, ...] = (),
    ) -> None:
        self.env = {**os.environ, **env}
        self.port = port or free_port()
        self.log_path = log_path
        self.options = options  # more `serve` options, e.g. ("--workers", "2")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ServerProcess:
        out: Any = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "giftcards.cli", "serve", "--port", str(self.port), *self.options],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        finally:
            if self.log_path:
                out.close()  # the child keeps its own copy of the descriptor
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"giftcards serve exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("giftcards serve did not become ready")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)
