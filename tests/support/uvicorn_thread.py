"""Uvicorn on a socket of its own, in a background thread: bound, started and waited for in one place."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn


def listening_socket(host: str, port: int = 0) -> socket.socket:
    """A bound TCP socket (port 0: any free one). proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on
    accepted sockets (else ~40 ms per answer); SO_REUSEADDR lets a server come back on its port at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_in_thread(
    app: Any, sock: socket.socket, *, within: float, name: str | None = None, **options: Any
) -> tuple[uvicorn.Server, threading.Thread]:
    """Serve `app` on `sock` in a daemon thread, with uvicorn's `options` and without its own logging
    and access log, and return once it accepts connections; a server that has not started `within`
    seconds (or whose thread died) is told to exit and its socket closed."""
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, **options))
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name=name, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + within
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(2)
            address = sock.getsockname()
            sock.close()
            raise RuntimeError(f"uvicorn did not start on {address} (see the log above)")
        time.sleep(0.002)
    return server, thread
