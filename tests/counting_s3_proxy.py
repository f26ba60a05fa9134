"""A real S3 server seen through a counter: a small HTTP proxy in front of moto (or rclone)
that forwards every request unchanged and records what crossed the network — the method,
the path below the bucket, whether it was a LIST, and the bytes sent and received. Tests of
the metadata cache and of `vault status` point vault at it (`AWS_ENDPOINT_URL`) and assert
on what a command really asked the server for."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from http_relay import RelayHandler, serving


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # the object key (or, for a LIST, the listed prefix), below the bucket
    listing: bool
    sent: int  # request body bytes
    received: int  # response body bytes


@dataclass
class Traffic:
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    def snapshot(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def received(self) -> int:
        return sum(r.received for r in self.snapshot())

    def sent(self) -> int:
        return sum(r.sent for r in self.snapshot())

    def listings(self, folder: str) -> list[Request]:
        """LIST requests of `folder` (e.g. "data/") under any repository prefix."""
        return [r for r in self.snapshot() if r.listing and f"/{folder}" in f"/{r.path}"]

    def breakdown(self) -> str:
        """Requests and bytes received per (method, folder), for a failing test's message."""
        totals: dict[str, list[int]] = {}
        for r in self.snapshot():
            folder = r.path.split("/")[1] if "/" in r.path else r.path
            key = f"{r.method}{' LIST' if r.listing else ''} {folder}"
            entry = totals.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] += r.received
        return ", ".join(f"{k}: {n} x {b} B" for k, (n, b) in sorted(totals.items()))

    def gets(self) -> list[Request]:
        return [r for r in self.snapshot() if r.method == "GET" and not r.listing]


def _describe(method: str, raw_path: str) -> tuple[str, bool]:
    parts = urlsplit(raw_path)
    query = parse_qs(parts.query)
    key = unquote(parts.path).lstrip("/").partition("/")[2]  # path-style: /bucket/key
    if method == "GET" and "list-type" in query:
        return query.get("prefix", [""])[0], True
    return key, False


@contextmanager
def counting_proxy(upstream: str) -> Iterator[tuple[str, Traffic]]:
    """(the proxy's endpoint, the traffic it recorded) for the server at `upstream`."""
    target = urlsplit(upstream)
    traffic = Traffic()

    class Proxy(RelayHandler):
        upstream = (target.hostname, target.port)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            _status, data = self.relay(body)
            path, listing = _describe(self.command, self.path)
            with traffic.lock:
                traffic.requests.append(Request(self.command, path, listing, len(body),
                                                0 if self.command == "HEAD" else len(data)))

        do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _handle

    with serving(Proxy) as endpoint:
        yield endpoint, traffic
