"""A loopback stand-in for an OCI registry: the distribution API's manifest HEAD, and optionally the
bearer-token challenge ghcr.io and Docker Hub use (token service at /token, basic auth checked)."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeRegistry:
    def __init__(self, *, login: tuple[str, str] | None = None) -> None:
        self.tags: set[str] = set()  # "repository:tag"
        self.login = login  # when set, manifests need a token, and the token needs this login
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                registry.requests.append(("HEAD", self.path, self.headers.get("Authorization")))
                self._manifest()

            def do_GET(self) -> None:
                registry.requests.append(("GET", self.path, self.headers.get("Authorization")))
                if self.path.startswith("/token"):
                    return self._token()
                if self.path == "/v2/":
                    return self._send(200, b"{}")
                self._manifest()

            def _manifest(self) -> None:
                if registry.login and self.headers.get("Authorization") != "Bearer good-token":
                    challenge = f'Bearer realm="{registry.url}/token",service="fake",scope="repository:x:pull"'
                    return self._send(401, b"{}", {"WWW-Authenticate": challenge})
                _, _, rest = self.path.partition("/v2/")
                repository, _, tag = rest.rpartition("/manifests/")
                found = f"{repository}:{tag}" in registry.tags
                self._send(200 if found else 404, b"{}")

            def _token(self) -> None:
                expected = "Basic " + base64.b64encode(":".join(registry.login or ("", "")).encode()).decode()
                if self.headers.get("Authorization") != expected:
                    return self._send(401, b"{}")
                self._send(200, json.dumps({"token": "good-token"}).encode())

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRegistry:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
