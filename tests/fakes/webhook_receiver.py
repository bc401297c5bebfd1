"""A loopback HTTP receiver that records every POST and answers from a script.

Used as a webhook endpoint, as a stand-in Alertmanager (``/api/v2/alerts``) and as the webhook
receiver BEHIND a real Alertmanager (counting its notifications). Answers are scripted per
request: ``script([(503, {}), (200, {})])`` answers the next two requests that way, then 200.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # wall clock when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """``with WebhookReceiver() as hook: hook.url`` ..."""

    MAX_BODY = 1 << 20

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._received: list[Received] = []
        self._script: list[tuple[int, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), receiver.MAX_BODY)
                body = self.rfile.read(length)
                status, headers = receiver._record(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                answer = b'{"status":"ok"}' if 200 <= status < 300 else b"scripted failure"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, answers: Iterable[tuple[int, dict[str, str]]]) -> None:
        """Answer the next requests with these (status, headers); afterwards 200."""
        with self._cond:
            self._script.extend(answers)

    def _record(self, received: Received) -> tuple[int, dict[str, str]]:
        with self._cond:
            self._received.append(received)
            answer = self._script.pop(0) if self._script else (200, {})
            self._cond.notify_all()
        return answer

    def received(self, path: str | None = None) -> list[Received]:
        with self._cond:
            return [r for r in self._received if path is None or r.path == path]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0, what: str = "requests"
    ) -> list[Received]:
        """Wait until ``predicate(all requests so far)`` holds; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._received):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; received {len(self._received)}")
                self._cond.wait(left)
            return list(self._received)

    def wait_count(self, count: int, path: str | None = None, timeout: float = 20.0) -> list[Received]:
        """Wait for at least ``count`` requests (to ``path``)."""
        self.wait_for(
            lambda got: len([r for r in got if path is None or r.path == path]) >= count,
            timeout,
            f"{count} request(s) to {path or 'any path'}",
        )
        return self.received(path)
