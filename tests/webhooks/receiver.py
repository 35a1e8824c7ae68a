"""A CRM (or GA4) on 127.0.0.1: a real HTTP server that records what it receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """What came in, and how to answer: `statuses` first, then `default`."""

    url: str
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    default: int = 200
    retry_after: str | None = None

    def answer(self) -> int:
        """The status for the next request."""
        return self.statuses.pop(0) if self.statuses else self.default

    def events(self) -> list[str]:
        """The event ids received, in order."""
        return [r.headers.get("calltrack-event-id", "") for r in self.received]


@contextmanager
def receiver() -> Iterator[Receiver]:
    """Serve a recording endpoint on a free 127.0.0.1 port for the block's duration."""
    lock = threading.Lock()
    state: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            parts = urlsplit(self.path)
            with lock:
                me = state[0]
                me.received.append(
                    Received(
                        path=parts.path,
                        query=parse_qs(parts.query),
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                    )
                )
                code = me.answer()
                retry_after = me.retry_after
            self.send_response(code)
            if retry_after is not None and code >= 400:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows what the tests assert

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 5
    state.append(Receiver(url=f"http://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
