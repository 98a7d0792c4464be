"""An HTTP proxy in front of the real Elasticsearch that misbehaves on cue, the way an overloaded cluster or a
proxy with a request-size limit does: what the sink must retry (429, 503) and what it must split (413).

    with FaultyElasticsearch("http://127.0.0.1:9200") as proxy:
        proxy.refuse_requests(2, 503)         # the next two bulk requests: HTTP 503, nothing indexed
        proxy.refuse_items(3, 429)            # the next bulk request: its first three items answered 429
        proxy.max_body_bytes = 2_000          # bodies over 2,000 bytes: HTTP 413, like nginx's client_max_body_size

Everything else is forwarded unchanged, so indexing is real.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx


class FaultyElasticsearch:
    def __init__(self, upstream: str, prefix: str = "") -> None:
        self.upstream = upstream.rstrip("/")
        self.prefix = prefix.rstrip("/")  # served only under this path, as a reverse proxy at https://host/es
        self.paths: list[str] = []
        self.max_body_bytes: int | None = None
        self.bulk_requests = 0
        self._lock = threading.Lock()
        self._refuse: list[int] = []
        self._items: list[tuple[int, int]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def refuse_requests(self, count: int, status: int) -> None:
        with self._lock:
            self._refuse += [status] * count

    def refuse_items(self, count: int, status: int, requests: int = 1) -> None:
        with self._lock:
            self._items += [(count, status)] * requests

    def __enter__(self) -> FaultyElasticsearch:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.paths.append(self.path)
                if proxy.prefix:
                    if not self.path.startswith(proxy.prefix + "/"):
                        return self._answer(404, b'{"error": "not under the proxy\'s path"}')
                    self.path = self.path[len(proxy.prefix) :]
                bulk = self.path.split("?", 1)[0].endswith("/_bulk")
                refuse, items = None, None
                if bulk:
                    with proxy._lock:
                        proxy.bulk_requests += 1
                        if proxy.max_body_bytes is not None and len(body) > proxy.max_body_bytes:
                            refuse = 413
                        elif proxy._refuse:
                            refuse = proxy._refuse.pop(0)
                        elif proxy._items:
                            items = proxy._items.pop(0)
                if refuse == 413:
                    return self._answer(413, b"")
                if refuse is not None:
                    error = {
                        "error": {"type": "es_rejected_execution_exception", "reason": "injected"},
                        "status": refuse,
                    }
                    return self._answer(refuse, json.dumps(error).encode())
                headers = {k: v for k, v in self.headers.items() if k.lower() in {"content-type", "authorization"}}
                answer = httpx.request(method, proxy.upstream + self.path, content=body, headers=headers, timeout=60)
                content = answer.content
                if items is not None:
                    count, status = items
                    parsed = answer.json()
                    for item in parsed.get("items", [])[:count]:
                        result = next(iter(item.values()))
                        result["status"] = status
                        result["error"] = {"type": "es_rejected_execution_exception", "reason": "injected"}
                    parsed["errors"] = True
                    content = json.dumps(parsed).encode()
                self._answer(answer.status_code, content)

            def do_POST(self) -> None:
                self._forward("POST")

            def do_PUT(self) -> None:
                self._forward("PUT")

            def do_GET(self) -> None:
                self._forward("GET")

        return Handler
