"""A real S3 server that runs out of space: a small HTTP proxy in front of moto or rclone
(or Azurite) that answers `507 Insufficient Storage` (as S3-compatible servers with a quota
do) once the objects stored through it would pass a byte budget. Everything else is
forwarded unchanged, so the backend talks to a real server throughout."""

from __future__ import annotations

import html
import http.client
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-authorization", "proxy-authenticate"}
_FULL = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InsufficientStorage</Code>'
         b"<Message>not enough space on the server</Message></Error>")


@contextmanager
def full_after(upstream: str, budget: int) -> Iterator[str]:
    """The proxy's endpoint: PUTs of object bodies beyond `budget` bytes in all get 507."""
    target = urlsplit(upstream)
    sizes: dict[str, int] = {}
    lock = threading.Lock()

    class Proxy(BaseHTTPRequestHandler):
        # headers and body go out in separate writes: without this, Nagle and delayed
        # ACKs hold each small response ~40 ms
        disable_nagle_algorithm = True
        protocol_version = "HTTP/1.1"

        def _forward(self, body: bytes) -> tuple[int, bytes]:
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status, reply.reason)
                for name, value in reply.getheaders():
                    if name.lower() not in _HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                # A HEAD has no body but announces the object's length: pass that on.
                length = reply.getheader("Content-Length") if self.command == "HEAD" \
                    else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                return reply.status, data
            finally:
                conn.close()

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            key = self.path.split("?")[0]
            if self.command == "PUT" and body:
                with lock:
                    used = sum(size for k, size in sizes.items() if k != key)
                    if used + len(body) > budget:
                        self.send_response(507, "Insufficient Storage")
                        self.send_header("Content-Type", "application/xml")
                        self.send_header("Content-Length", str(len(_FULL)))
                        self.end_headers()
                        self.wfile.write(_FULL)
                        return
            status, _ = self._forward(body)
            if status < 300:
                with lock:
                    if self.command == "PUT" and body:
                        sizes[key] = len(body)
                    elif self.command == "DELETE":
                        sizes.pop(key, None)
                    elif self.command == "POST" and "delete" in self.path.split("?")[-1]:
                        # DeleteObjects: the keys are in the XML body, the bucket in the path
                        bucket = key.rstrip("/")
                        for name in re.findall(rb"<Key>(.*?)</Key>", body):
                            sizes.pop(f"{bucket}/{html.unescape(name.decode())}", None)
                    elif self.command == "POST" and "comp=batch" in self.path:
                        # Azure's blob batch: DELETE lines in a multipart body, paths
                        # relative to the account (or whole), percent-encoded or not
                        for name in re.findall(rb"DELETE (\S+) HTTP", body):
                            gone = unquote(name.decode().split("?")[0])
                            for stored in [k for k in sizes if unquote(k).endswith(gone)]:
                                sizes.pop(stored)

        do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
