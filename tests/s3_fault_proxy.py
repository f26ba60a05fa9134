"""A real S3 server that misbehaves on command: an HTTP proxy in front of moto (or rclone)
that forwards every request unchanged until a test arms a fault:

- ``answer_503(n, every=k)``: ``503 SlowDown`` for ``n`` matching requests, each k-th
  one (so a retry of the same request gets through), then it recovers;
- ``drop_uploads(n, after, every=k)``: ``n`` PUTs with a body (each k-th one) are cut off:
  the proxy reads ``after`` bytes of the body, then closes the connection unanswered;
- ``delay_listings(seconds)``: every ListObjects answer waits that long first;
- ``truncate(path_part, keep)``: objects whose key contains ``path_part`` are served as
  if the server had kept only their first ``keep`` bytes (GET, ranged GET, HEAD agree);
- ``cut_downloads(n, keep)``: the next ``n`` GETs of ``data/`` objects announce the whole
  length, send ``keep`` bytes and close the connection (a download that breaks);
- ``hold_uploads()``: PUTs with a body stop before their body is read until
  ``release()`` (``held`` is set once one waits): a test kills the client mid-upload;
- ``refuse(status, methods, path_part)``: every matching request (whose key contains
  ``path_part``) gets ``status`` until ``recover()``: a failure that does not pass.

``injected`` counts what was done, so a test can prove the fault really bit. The vault
process under test talks to the proxy through ``AWS_ENDPOINT_URL`` like to any server.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from http_relay import RelayHandler, content_length, serving

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
_ERRORS = {
    403: ("AccessDenied", "Access Denied"),
    503: ("SlowDown", "Please reduce your request rate."),
}


def _error_body(status: int) -> bytes:
    code, message = _ERRORS.get(status, ("InternalError", "injected failure"))
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()


@dataclass
class Faults:
    """What the proxy does to the next requests; every method is safe from any thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    errors_left: int = 0
    error_methods: frozenset[str] = frozenset()
    error_every: int = 1
    drops_left: int = 0
    drop_after: int = 0
    drop_every: int = 1
    #: matching requests seen since the fault was armed (for ``every``)
    seen: Counter[str] = field(default_factory=Counter)
    listing_delay: float = 0.0
    truncated: dict[str, int] = field(default_factory=dict)
    cuts_left: int = 0
    cut_keep: int = 0
    refused: tuple[int, frozenset[str], str] | None = None
    injected: Counter[str] = field(default_factory=Counter)
    holding: bool = False
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def answer_503(self, count: int, methods: tuple[str, ...] = ("PUT", "GET", "HEAD"),
                   every: int = 1) -> None:
        with self.lock:
            self.errors_left, self.error_methods = count, frozenset(methods)
            self.error_every, self.seen["503"] = every, 0

    def drop_uploads(self, count: int, after: int = 256 * 1024, every: int = 1) -> None:
        with self.lock:
            self.drops_left, self.drop_after = count, after
            self.drop_every, self.seen["drop"] = every, 0

    def delay_listings(self, seconds: float) -> None:
        with self.lock:
            self.listing_delay = seconds

    def truncate(self, path_part: str, keep: int) -> None:
        with self.lock:
            self.truncated[path_part] = keep

    def cut_downloads(self, count: int, keep: int = 64 * 1024) -> None:
        with self.lock:
            self.cuts_left, self.cut_keep = count, keep

    def refuse(self, status: int, methods: tuple[str, ...] = ("PUT",),
               path_part: str = "") -> None:
        with self.lock:
            self.refused = (status, frozenset(methods), path_part)

    def hold_uploads(self) -> None:
        with self.lock:
            self.holding = True
            self.held.clear()
            self.released.clear()

    def release(self) -> None:
        with self.lock:
            self.holding = False
        self.released.set()

    def recover(self) -> None:
        """Every fault off (what was injected stays counted)."""
        with self.lock:
            self.errors_left = self.drops_left = self.cuts_left = 0
            self.listing_delay = 0.0
            self.truncated.clear()
            self.refused = None
        self.release()

    # --- decisions, one per request -----------------------------------------------------

    def error_for(self, method: str, key: str) -> int | None:
        with self.lock:
            if self.refused is not None and method in self.refused[1] \
                    and self.refused[2] in key:
                self.injected[f"refused {method}"] += 1
                return self.refused[0]
            if self.errors_left <= 0 or method not in self.error_methods:
                return None
            self.seen["503"] += 1
            if self.seen["503"] % self.error_every:
                return None
            self.errors_left -= 1
            self.injected[f"503 {method}"] += 1
            return 503

    def wait_if_held(self, method: str, length: int) -> None:
        with self.lock:
            if not self.holding or method != "PUT" or length < 64 * 1024:
                return
            self.injected["held upload"] += 1
        self.held.set()
        self.released.wait(timeout=120)

    def drop_point(self, method: str, length: int) -> int | None:
        with self.lock:
            if method != "PUT" or length <= self.drop_after or self.drops_left <= 0:
                return None
            self.seen["drop"] += 1
            if self.seen["drop"] % self.drop_every:
                return None
            self.drops_left -= 1
            self.injected["dropped upload"] += 1
            return self.drop_after

    def truncation_of(self, key: str) -> int | None:
        with self.lock:
            for part, keep in self.truncated.items():
                if part in key:
                    self.injected["truncated read"] += 1
                    return keep
        return None

    def cut_point(self, key: str) -> int | None:
        with self.lock:
            if self.cuts_left <= 0 or "/data/" not in key:
                return None
            self.cuts_left -= 1
            self.injected["cut download"] += 1
            return self.cut_keep

    def listing_pause(self, query: str) -> float:
        with self.lock:
            if "list-type=2" not in query or self.listing_delay <= 0:
                return 0.0
            self.injected["delayed listing"] += 1
            return self.listing_delay


def _handler(target_host: str, target_port: int, faults: Faults) -> type[BaseHTTPRequestHandler]:
    class Proxy(RelayHandler):
        upstream = (target_host, target_port)

        def _fail(self, status: int) -> None:
            self.answer(status, "Injected", [("Content-Type", "application/xml")],
                         _error_body(status))

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            key, _, query = self.path.partition("?")
            faults.wait_if_held(self.command, length)
            drop_at = faults.drop_point(self.command, length)
            if drop_at is not None:
                self.rfile.read(drop_at)
                self._hang_up()
                return
            body = self.rfile.read(length)
            if len(body) < length:  # the client went away mid-body: nothing to forward
                self._hang_up()
                return
            status = faults.error_for(self.command, key)
            if status is not None:
                self._fail(status)
                return
            pause = faults.listing_pause(query) if self.command == "GET" else 0.0
            if pause:
                time.sleep(pause)
            keep = faults.truncation_of(key) if self.command in ("GET", "HEAD") else None
            if keep is not None:
                self._serve_truncated(body, keep)
                return
            cut = faults.cut_point(key) if self.command == "GET" else None
            status, reason, headers, data = self.upstream_reply(body)
            if self.command == "HEAD":  # no body, but the length the server announced
                self.answer(status, reason, headers, b"", announce=content_length(headers))
                return
            if cut is not None and status < 300 and len(data) > cut:
                self.answer(status, reason, headers, data[:cut], announce=len(data))
                self._hang_up()
                return
            self.answer(status, reason, headers, data)

        def _serve_truncated(self, body: bytes, keep: int) -> None:
            """The object as a server that lost its tail would serve it: shorter, and
            consistently so (HEAD, GET and ranged GET agree on the new length)."""
            status, reason, headers, data = self.upstream_reply(body, drop_range=True)
            if status >= 300:
                self.answer(status, reason, headers, data)
                return
            headers = [(k, v) for k, v in headers if k.lower() != "content-range"]
            if self.command == "HEAD":
                self.answer(200, "OK", headers, b"", announce=min(keep, content_length(headers)))
                return
            wanted = _RANGE.match(self.headers.get("Range") or "")
            if wanted is None:
                self.answer(200, "OK", headers, data[:keep])
            else:
                self._serve_range(headers, data[:keep], wanted)

        def _serve_range(self, headers: list[tuple[str, str]], whole: bytes,
                         wanted: re.Match[str]) -> None:
            start = int(wanted.group(1))
            end = int(wanted.group(2)) if wanted.group(2) else len(whole) - 1
            if start >= len(whole):
                self.answer(416, "Range Not Satisfiable",
                             [("Content-Range", f"bytes */{len(whole)}")], b"")
                return
            end = min(end, len(whole) - 1)
            self.answer(206, "Partial Content",
                         [*headers, ("Content-Range", f"bytes {start}-{end}/{len(whole)}")],
                         whole[start:end + 1])

        def _hang_up(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may be gone already
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)

        do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _handle

    return Proxy


@contextmanager
def fault_proxy(upstream: str) -> Iterator[tuple[str, Faults]]:
    """The proxy's endpoint and the faults to arm; forwards to ``upstream``."""
    target = urlsplit(upstream)
    assert target.hostname is not None and target.port is not None
    faults = Faults()
    with serving(_handler(target.hostname, target.port, faults)) as endpoint:
        yield endpoint, faults
