"""The GCS XML API, as obstore's GCSStore speaks it, translated onto gcp-storage-emulator's
JSON API: a small test-side HTTP server on 127.0.0.1 (a temporary port, one thread per
request) in front of the emulator.

gcp-storage-emulator (the project's GCS test server) serves the JSON API; obstore 0.12's
GCSStore speaks the XML API, of which the emulator answers only part (HEAD and the
``list-type=2`` listing: 501; PUT: no ETag; GET: no Last-Modified). This shim answers
exactly the requests obstore was seen to make (``OBSTORE_REQUESTS``) by asking the emulator
through its JSON API, and writes the answer the XML API would give: ETag (the MD5, as GCS
gives it for a single-PUT object), Last-Modified, Content-Length, ``x-goog-generation``,
a ``ListBucketResult`` document, ``<Error><Code>`` bodies.

The objects stay in the emulator: the shim keeps no data and no state but its request
log, and implements no semantics the emulator lacks. In particular the XML API's
precondition ``x-goog-if-generation-match`` is passed on as the JSON API's
``ifGenerationMatch``, which this emulator ignores; a 412 it gave would be passed back.
So vault's probe finds the server does not enforce conditional writes and chooses the
create-then-list-then-check lock protocol, as for rclone serve s3 (docs/storage.md).
Anything else (multipart ``POST ?uploads``, a copy, an OAuth token request) is answered
501 and logged, so a test sees it rather than a silent success.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

#: The XML API requests obstore 0.12's GCSStore made through the shim (measured with the
#: storage contract suite and the e2e round trip: ``GcsXmlShim.requests`` logs them).
OBSTORE_REQUESTS = (
    "PUT /BUCKET/KEY (Content-Length, Content-Type; x-goog-if-generation-match: 0 to "
    "create, GENERATION to replace)",
    "GET /BUCKET/KEY (whole, or Range: bytes=START-END)",
    "HEAD /BUCKET/KEY",
    "DELETE /BUCKET/KEY",
    "GET /BUCKET?list-type=2&prefix=P/ (continuation-token=T for the next page)",
)

_JSON_API = "/storage/v1/b"
_UPLOAD_API = "/upload/storage/v1/b"
_XML = "application/xml"
_ERRORS = {404: ("NoSuchKey", "The specified key does not exist."),
           412: ("PreconditionFailed", "At least one of the pre-conditions you specified "
                 "did not hold."),
           416: ("InvalidRange", "The requested range cannot be satisfied."),
           501: ("NotImplemented", "The test shim does not translate this request.")}
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass
class GcsXmlShim:
    #: where obstore sends its XML API requests: http://127.0.0.1:PORT
    endpoint: str
    #: "METHOD /path?query [x-goog-* and Range headers]" of every request, in order
    requests: list[str] = field(default_factory=list)
    #: the requests answered 501: outside the subset obstore was seen to send
    untranslated: list[str] = field(default_factory=list)


@contextmanager
def gcs_xml_shim(emulator: str) -> Iterator[GcsXmlShim]:
    """The shim in a thread of this process, translating onto the emulator at
    ``emulator`` (http://127.0.0.1:PORT)."""
    upstream = urlsplit(emulator)
    assert upstream.hostname is not None and upstream.port is not None
    log_lock = threading.Lock()

    class Handler(_XmlToJson):
        def log_request_line(self, line: str) -> None:
            with log_lock:
                shim.requests.append(line)

        def log_untranslated(self, line: str) -> None:
            with log_lock:
                shim.untranslated.append(line)

    Handler.upstream = (upstream.hostname, upstream.port)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # the kernel picks a free port
    server.daemon_threads = True
    shim = GcsXmlShim(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, name="gcs-xml-shim", daemon=True)
    thread.start()
    try:
        yield shim
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _XmlToJson(BaseHTTPRequestHandler):
    # headers and body go out in separate writes: without this, Nagle and delayed
    # ACKs hold each small response ~40 ms
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    upstream: tuple[str, int]

    def log_request_line(self, line: str) -> None:
        raise NotImplementedError

    def log_untranslated(self, line: str) -> None:
        raise NotImplementedError

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is kept in ``GcsXmlShim.requests``."""

    # --- one request -------------------------------------------------------------------

    def _dispatch(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = urlsplit(self.path)
        parts = target.path.lstrip("/").split("/", 1)
        bucket, key = unquote(parts[0]), unquote(parts[1]) if len(parts) > 1 else ""
        query = {k: v[0] for k, v in parse_qs(target.query, keep_blank_values=True).items()}
        line = " ".join([self.command, self.path, *self._noted_headers()])
        self.log_request_line(line)
        if not self._translated(bucket, key, query):
            self.log_untranslated(line)
            self._error(501)
            return
        try:
            self._translate(bucket, key, query, body)
        except _Untranslated as exc:
            self._answer(502, {"Content-Type": "text/plain"}, str(exc).encode())

    def _translated(self, bucket: str, key: str, query: dict[str, str]) -> bool:
        """Whether the request is one of OBSTORE_REQUESTS."""
        if key:
            return self.command in ("PUT", "GET", "HEAD", "DELETE") and not query
        return self.command == "GET" and query.get("list-type") == "2"

    def _translate(self, bucket: str, key: str, query: dict[str, str], body: bytes) -> None:
        if self.command == "PUT":
            self._put(bucket, key, body)
        elif self.command in ("GET", "HEAD") and key:
            self._get(bucket, key, head=self.command == "HEAD")
        elif self.command == "DELETE":
            self._delete(bucket, key)
        else:
            self._list(bucket, query)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _dispatch

    def _noted_headers(self) -> list[str]:
        return [f"{name}: {value}" for name, value in self.headers.items()
                if name.lower().startswith("x-goog-") or name.lower() == "range"]

    # --- the emulator's JSON API -------------------------------------------------------

    def _emulator(self, method: str, path: str, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            reply = conn.getresponse()
            return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
        finally:
            conn.close()

    def _metadata(self, bucket: str, key: str) -> dict[str, Any] | None:
        status, _, data = self._emulator("GET", f"{_JSON_API}/{_q(bucket)}/o/{_q(key)}")
        if status == 404:
            return None
        _expect(status, 200, "object metadata")
        return dict(json.loads(data))

    def _bucket_exists(self, bucket: str) -> bool:
        status, _, _ = self._emulator("GET", f"{_JSON_API}/{_q(bucket)}")
        return status == 200

    # --- the XML API's answers ---------------------------------------------------------

    def _put(self, bucket: str, key: str, body: bytes) -> None:
        condition = self.headers.get("x-goog-if-generation-match")
        params = {"name": key, **({"ifGenerationMatch": condition} if condition else {})}
        query = "&".join(f"{k}={_q(v)}" for k, v in params.items())
        content_type = self.headers.get("Content-Type") or "application/octet-stream"
        if body:
            status, _, data = self._emulator(
                "POST", f"{_UPLOAD_API}/{_q(bucket)}/o?uploadType=media&{query}", body,
                {"Content-Type": content_type})
        else:  # the emulator's media upload cannot take an empty body; multipart can
            status, _, data = self._emulator(
                "POST", f"{_UPLOAD_API}/{_q(bucket)}/o?uploadType=multipart&{query}",
                *_empty_multipart(key, content_type))
        if status in (404, 412):
            self._error(status, bucket)
            return
        _expect(status, 200, "upload")
        self._answer(200, _object_headers(json.loads(data)))

    def _get(self, bucket: str, key: str, head: bool) -> None:
        meta = self._metadata(bucket, key)
        if meta is None:
            self._error(404, bucket)
            return
        headers = _object_headers(meta)
        size = int(meta["size"])
        wanted = _RANGE.fullmatch(self.headers.get("Range", "").strip())
        if head or (wanted is None and size == 0):
            self._answer(200, {**headers, "Content-Length": str(size)})
            return
        if wanted is not None and int(wanted[1]) >= size:
            self._error(416, bucket)
            return
        media = f"{_JSON_API}/{_q(bucket)}/o/{_q(key)}?alt=media"
        status, answer, data = self._emulator(
            "GET", media, headers={"Range": wanted[0]} if wanted else None)
        if status == 404:  # removed between the two requests
            self._error(404, bucket)
            return
        _expect(status, 206 if wanted else 200, "download")
        if wanted:
            headers["Content-Range"] = answer["content-range"]
        self._answer(status, headers, data)

    def _delete(self, bucket: str, key: str) -> None:
        status, _, _ = self._emulator("DELETE", f"{_JSON_API}/{_q(bucket)}/o/{_q(key)}")
        if status == 404:
            self._error(404, bucket)
            return
        _expect(status, 200, "delete")
        self._answer(204, {})

    def _list(self, bucket: str, query: dict[str, str]) -> None:
        """The emulator lists everything at once; pages of ``max-keys`` (GCS: 1000) are
        cut here, the continuation token being the last key of the page before."""
        prefix = query.get("prefix", "")
        status, _, data = self._emulator(
            "GET", f"{_JSON_API}/{_q(bucket)}/o?prefix={_q(prefix)}")
        if status == 404:
            self._error(404, bucket)
            return
        _expect(status, 200, "listing")
        after = query.get("continuation-token") or query.get("start-after") or ""
        items = sorted((i for i in json.loads(data).get("items") or [] if i["name"] > after),
                       key=lambda i: str(i["name"]))
        page = items[:int(query.get("max-keys") or 1000)]
        entries = "".join(
            f"<Contents><Key>{escape(i['name'])}</Key><Size>{i['size']}</Size>"
            f"<LastModified>{i['updated']}</LastModified>"
            f"<ETag>{escape(_etag(i))}</ETag></Contents>" for i in page)
        more = (f"<IsTruncated>true</IsTruncated><NextContinuationToken>"
                f"{escape(page[-1]['name'])}</NextContinuationToken>"
                if len(page) < len(items) else "<IsTruncated>false</IsTruncated>")
        document = (f"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult>"
                    f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
                    f"<KeyCount>{len(page)}</KeyCount>{more}{entries}</ListBucketResult>")
        self._answer(200, {"Content-Type": _XML}, document.encode())

    def _error(self, status: int, bucket: str = "") -> None:
        code, message = _ERRORS[status]
        if status == 404 and bucket and not self._bucket_exists(bucket):
            code, message = "NoSuchBucket", "The specified bucket does not exist."
        document = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                    f"<Message>{message}</Message></Error>")
        self._answer(status, {"Content-Type": _XML}, document.encode())

    def _answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)


def _q(text: str) -> str:
    return quote(text, safe="")


class _Untranslated(Exception):
    """The emulator answered what the shim has no XML API answer for."""


def _expect(status: int, want: int, what: str) -> None:
    # Anything else from the emulator is a gap in the translation: say so in a 502 that
    # obstore reports (after its retries), so the test fails naming it.
    if status != want:
        raise _Untranslated(f"gcp-storage-emulator answered {status} to the {what}")


def _etag(meta: dict[str, Any]) -> str:
    """GCS's XML ETag of a single-PUT object: its MD5 in hex, quoted."""
    return '"' + base64.b64decode(meta["md5Hash"]).hex() + '"'


def _object_headers(meta: dict[str, Any]) -> dict[str, str]:
    updated = datetime.fromisoformat(str(meta["updated"]).replace("Z", "+00:00"))
    return {"ETag": _etag(meta), "Last-Modified": format_datetime(updated, usegmt=True),
            "x-goog-generation": str(meta["generation"]),
            "x-goog-metageneration": str(meta.get("metageneration", "1")),
            "x-goog-stored-content-length": str(meta["size"]),
            "Content-Type": str(meta.get("contentType") or "application/octet-stream")}


def _empty_multipart(key: str, content_type: str) -> tuple[bytes, dict[str, str]]:
    boundary = "vault-gcs-shim-boundary"
    body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps({'name': key})}\r\n--{boundary}\r\n"
            f"Content-Type: {content_type}\r\n\r\n\r\n--{boundary}--\r\n").encode()
    return body, {"Content-Type": f"multipart/related; boundary={boundary}"}
