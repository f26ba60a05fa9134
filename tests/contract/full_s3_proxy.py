"""A real S3 server that runs out of space: a small HTTP proxy in front of moto or rclone
(or Azurite) that answers `507 Insufficient Storage` (as S3-compatible servers with a quota
do) once the objects stored through it would pass a byte budget. Everything else is
forwarded unchanged, so the backend talks to a real server throughout."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

from http_relay import RelayHandler, serving

_FULL = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InsufficientStorage</Code>'
         b"<Message>not enough space on the server</Message></Error>")


@contextmanager
def full_after(upstream: str, budget: int) -> Iterator[str]:
    """The proxy's endpoint: PUTs of object bodies beyond `budget` bytes in all get 507."""
    target = urlsplit(upstream)
    sizes: dict[str, int] = {}
    lock = threading.Lock()

    class Proxy(RelayHandler):
        upstream = (target.hostname, target.port)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            key = self.path.split("?")[0]
            if self.command == "PUT" and body:
                with lock:
                    used = sum(size for k, size in sizes.items() if k != key)
                    if used + len(body) > budget:
                        self.answer(507, "Insufficient Storage",
                                    [("Content-Type", "application/xml")], _FULL)
                        return
            status, _ = self.relay(body)
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

    with serving(Proxy) as endpoint:
        yield endpoint
