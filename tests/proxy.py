"""Small HTTP proxies on loopback in front of real servers (test support): faults, redirects.

`FaultProxy` stands in front of a real pypiserver: ``fail_posts=[503, 503]`` answers the first two
uploads with 503 and forwards everything else, so retries meet a real index afterwards.
`RedirectingFront` sends reads of some paths to a second server on another loopback host.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class FaultProxy:
    def __init__(self, upstream: str, fail_posts: Iterable[int] = ()) -> None:
        self.upstream = urlsplit(upstream)
        self.faults = list(fail_posts)
        self.posts: list[int] = []  # the status answered to each upload
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "POST":
                    with proxy.lock:
                        fault = proxy.faults.pop(0) if proxy.faults else None
                    if fault is not None:
                        proxy.posts.append(fault)
                        self.send_response(fault)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                conn = http.client.HTTPConnection(proxy.upstream.hostname or "127.0.0.1",
                                                  proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if self.command == "POST":
                    proxy.posts.append(response.status)
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_HEAD(self) -> None:
                self._forward()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class RedirectingFront:
    """A registry's or an index's front on 127.0.0.1 that sends reads of some paths to storage
    on another host, as Docker Hub, ECR and GHCR send blob reads to their storage hosts.

    Reads (GET, HEAD) are forwarded to ``upstream`` as they come (``Authorization`` included:
    the front is the registry), except GETs whose path matches ``redirect``: those are answered
    with a 307 to the same path on a second server, on 127.0.0.2. That server records the
    headers of every request it receives and serves the body, read from the upstream with
    ``storage_auth``, its own access (as a signed storage URL carries its own).
    """

    def __init__(self, upstream: str, redirect: str,
                 storage_auth: tuple[str, str] | None = None) -> None:
        import base64
        import re

        self.upstream = urlsplit(upstream)
        self.pattern = re.compile(redirect)
        self.storage_requests: list[tuple[str, dict[str, str]]] = []
        self.redirected = 0
        storage_header = None if storage_auth is None else "Basic " + base64.b64encode(
            ":".join(storage_auth).encode()).decode()
        front = self

        def fetch(handler: BaseHTTPRequestHandler, headers: dict[str, str],
                  body: bytes | None) -> None:
            conn = http.client.HTTPConnection(front.upstream.hostname or "127.0.0.1",
                                              front.upstream.port, timeout=30)
            conn.request(handler.command, handler.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            handler.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(data)
            conn.close()

        class Front(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "GET" and front.pattern.search(self.path):
                    with front.lock:
                        front.redirected += 1
                    self.send_response(307)
                    self.send_header("Location", f"{front.storage_url}{self.path.lstrip('/')}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                # The Host the client asked for: the registry builds its URLs from it.
                fetch(self, dict(self.headers.items()), body)

            def do_GET(self) -> None:
                self._any()

            def do_HEAD(self) -> None:
                self._any()

        class Storage(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with front.lock:
                    front.storage_requests.append((self.path, dict(self.headers.items())))
                headers = {"Accept": self.headers.get("Accept", "*/*")}
                if storage_header:
                    headers["Authorization"] = storage_header
                fetch(self, headers, None)

        self.lock = threading.Lock()
        self.front = ThreadingHTTPServer(("127.0.0.1", 0), Front)
        self.storage = ThreadingHTTPServer(("127.0.0.2", 0), Storage)
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True)
                        for s in (self.front, self.storage)]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.front.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/"

    @property
    def storage_url(self) -> str:
        return f"http://127.0.0.2:{self.storage.server_address[1]}/"

    def leaked(self) -> list[str]:
        """The storage paths that were read with an ``Authorization`` header."""
        return [path for path, headers in self.storage_requests
                if any(k.lower() == "authorization" for k in headers)]

    def __enter__(self) -> RedirectingFront:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self.front, self.storage):
            server.shutdown()
            server.server_close()
