"""What the tests' HTTP proxies in front of a storage server share: passing a request on
to the server and its answer back (`RelayHandler`), and serving a handler on loopback
(`serving`). Each proxy adds only what it is for: counting, failing when full, faults."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: headers about one connection, never passed on
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authenticate", "proxy-authorization"}

Headers = list[tuple[str, str]]


class RelayHandler(BaseHTTPRequestHandler):
    """Relays each request to `upstream` (host, port), set by a subclass."""

    upstream: tuple[str, int]
    # headers and body go out in separate writes: without this, Nagle and delayed ACKs
    # hold each small response ~40 ms
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def upstream_reply(self, body: bytes, *, drop_range: bool = False
                       ) -> tuple[int, str, Headers, bytes]:
        """The server's answer to this request (with `body`): status, reason, headers,
        body; `drop_range` asks for the whole object."""
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP
                       and not (drop_range and k.lower() == "range")}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            reply = conn.getresponse()
            return reply.status, reply.reason, reply.getheaders(), reply.read()
        finally:
            conn.close()

    def answer(self, status: int, reason: str, headers: Headers, data: bytes, *,
               announce: int | None = None) -> None:
        """Send an answer; `announce` is a Content-Length other than len(data) (a HEAD's,
        or a body that will be cut short)."""
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data) if announce is None else announce))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def relay(self, body: bytes) -> tuple[int, bytes]:
        """Pass the request on and its answer back; (status, the answer's body)."""
        status, reason, headers, data = self.upstream_reply(body)
        # A HEAD has no body but announces the object's length: pass that on.
        announce = content_length(headers) if self.command == "HEAD" else None
        self.answer(status, reason, headers, data, announce=announce)
        return status, data

    def log_message(self, format: str, *args: object) -> None:
        pass


def content_length(headers: Headers) -> int:
    return int(next((v for k, v in headers if k.lower() == "content-length"), "0"))


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on a free loopback port until the block ends; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
