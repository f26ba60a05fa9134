"""A repository in an S3 bucket (AWS, MinIO, Backblaze B2, rclone serve s3, ...) via obstore.

URL: ``s3://bucket/prefix``. Everything else — endpoint, region, path-style requests and
the credentials — comes from ``[repository.s3]`` in the config (credentials as secret
references) or, for what that leaves unset, the standard AWS environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``,
``AWS_ENDPOINT_URL``). A URL is shown in messages, so it never carries a secret.

Layout under the prefix mirrors the local backend (and restic's)::

    config   keys/<id>   data/<id[:2]>/<id>   index/<id>   snapshots/<id>   locks/<id> ...

An S3 PUT is atomic (a reader sees the old object, the new one or none; a multipart upload
becomes visible only when completed), so no temp objects are ever written. obstore (Rust's
``object_store``) releases the GIL and retries 5xx/timeouts itself a few times; what still
fails is mapped to vault's errors, transient or not, so ``RetryingStorage`` can decide.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from vault.errors import (
    NotEnoughSpace,
    ObjectNotFound,
    RepositoryExists,
    StorageError,
    TransientStorageError,
)
from vault.foundation.units import human_bytes
from vault.storage.base import (
    CONFIG_NAME,
    ObjectInfo,
    ObjectKind,
    Storage,
    object_dir,
    validate_kind,
    validate_name,
    validate_range,
)
from vault.storage.registry import register
from vault.storage.s3_settings import S3Settings, from_restic_form, parse_s3_url, settings_from

if TYPE_CHECKING:
    from vault.config.model import RepositoryConfig

_STATUS = re.compile(r"status code: (\d{3})")
_S3_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
# HTTP answers that a second attempt can cure: throttling, timeouts, server trouble.
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_NO_SPACE_CODES = frozenset({"QuotaExceeded", "InsufficientStorage", "EntityTooLarge"})
# Where the conditional-write probe puts its throw-away object: not a kind, never listed.
_PROBE_DIR = "probe"


def _make_store(settings: S3Settings) -> Any:
    from obstore.store import S3Store  # heavy (a Rust extension): only when S3 is used

    config: dict[str, Any] = {"region": settings.region or "us-east-1"}
    if settings.endpoint:
        config["endpoint"] = settings.endpoint
    # A custom endpoint is almost always a self-hosted server that wants path-style.
    path_style = settings.path_style if settings.path_style is not None \
        else bool(settings.endpoint)
    config["virtual_hosted_style_request"] = not path_style
    for key in ("access_key_id", "secret_access_key", "session_token"):
        value = getattr(settings, key)
        if value is not None:
            config[key] = str(value)
    client = {"allow_http": bool(settings.endpoint and settings.endpoint.startswith("http:")),
              "connect_timeout": timedelta(seconds=10), "timeout": timedelta(minutes=5)}
    retry = {"max_retries": 3, "retry_timeout": timedelta(seconds=60),
             "backoff": {"init_backoff": timedelta(milliseconds=200),
                         "max_backoff": timedelta(seconds=5), "base": 2}}
    return S3Store(settings.bucket, prefix=settings.prefix or None, config=config,  # type: ignore[arg-type]
                   client_options=client, retry_config=retry)  # type: ignore[arg-type]


class S3Storage:
    """Storage in an S3 bucket under a prefix; see the module docstring."""

    def __init__(self, settings: S3Settings) -> None:
        import obstore  # heavy (a Rust extension): only when S3 is used

        self._obstore = obstore
        self.settings = settings
        where = f"s3://{settings.bucket}/{settings.prefix}".rstrip("/")
        self.location = f"{where} at {settings.endpoint}" if settings.endpoint else where
        self._store = _make_store(settings)
        self._conditional_put: bool | None = None
        self._ranges_ignored = False
        self._probe_lock = threading.Lock()

    # --- layout ---------------------------------------------------------------------

    def _key(self, kind: ObjectKind, name: str) -> str:
        validate_name(kind, name, self.location)
        return "/".join((*object_dir(kind, name), name))

    def create(self) -> None:
        if self.exists("config", CONFIG_NAME):
            raise RepositoryExists(repo=self.location)
        # Nothing to make (S3 has no directories); listing proves the bucket is there and
        # the credentials may read it, so init fails now rather than at the first save.
        for _ in self.list("keys"):
            break

    # --- reading --------------------------------------------------------------------

    def exists(self, kind: ObjectKind, name: str) -> bool:
        key = self._key(kind, name)
        try:
            self._obstore.head(self._store, key)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise self._translate(exc, f"check {kind}/{name}") from exc
        return True

    def load(
        self, kind: ObjectKind, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        key = self._key(kind, name)
        validate_range(offset, length, self.location, f"{kind}/{name}")
        try:
            if length is None and offset == 0:
                return bytes(self._obstore.get(self._store, key).bytes())
            if length == 0 or (length is None and offset > 0):
                return self._load_to_end_or_empty(kind, name, key, offset, length)
            assert length is not None
            data = self._get_range(key, offset, length)
        except FileNotFoundError:
            raise ObjectNotFound(where=self.location, name=f"{kind}/{name}") from None
        except StorageError:
            raise
        except Exception as exc:
            if _status(exc) == 416:
                raise self._out_of_range(kind, name, offset, length) from None
            raise self._translate(exc, f"read {kind}/{name}") from exc
        if len(data) != length:
            # S3 answers a range past the end with what there is; a short read means a
            # stale index or a truncated object, so say so rather than hand back less.
            raise self._out_of_range(kind, name, offset, length)
        return bytes(data)

    def _get_range(self, key: str, offset: int, length: int) -> bytes | memoryview:
        if not self._ranges_ignored:
            try:
                return memoryview(self._obstore.get_range(self._store, key, start=offset,
                                                          length=length))
            except Exception as exc:
                if "NotPartial" not in str(exc) and "non-partial" not in str(exc):
                    raise
                # rclone serve s3 sends the right bytes with 200 instead of 206, which
                # obstore refuses; read such a server's objects whole and slice them.
                self._ranges_ignored = True
        whole = memoryview(self._obstore.get(self._store, key).bytes())
        return whole[offset:offset + length]

    def _load_to_end_or_empty(self, kind: ObjectKind, name: str, key: str, offset: int,
                              length: int | None) -> bytes:
        # An empty range is not a valid HTTP range, and "from offset to the end" answers
        # 416 at the very end: the size decides both.
        size = int(self._obstore.head(self._store, key)["size"])
        if offset > size or (length is not None and offset + length > size):
            raise self._out_of_range(kind, name, offset, length)
        if length == 0 or offset == size:
            return b""
        return bytes(self._get_range(key, offset, size - offset))

    def _out_of_range(self, kind: ObjectKind, name: str, offset: int,
                      length: int | None) -> StorageError:
        want = "to the end" if length is None else f"{length} bytes"
        return StorageError(where=self.location,
                            detail=f"{kind}/{name} is too short to read {want} at {offset}")

    def stat(self, kind: ObjectKind, name: str) -> ObjectInfo:
        key = self._key(kind, name)
        try:
            meta = self._obstore.head(self._store, key)
        except FileNotFoundError:
            raise ObjectNotFound(where=self.location, name=f"{kind}/{name}") from None
        except Exception as exc:
            raise self._translate(exc, f"stat {kind}/{name}") from exc
        return ObjectInfo(kind=kind, name=name, size=int(meta["size"]))

    def list(self, kind: ObjectKind) -> Iterator[ObjectInfo]:
        validate_kind(kind, self.location)
        if kind == "config":
            try:
                yield self.stat("config", CONFIG_NAME)
            except ObjectNotFound:
                return
            return
        try:
            for chunk in self._obstore.list(self._store, f"{kind}/", chunk_size=1000):
                for meta in chunk:
                    name = _object_name(kind, str(meta["path"]))
                    if name is not None:
                        yield ObjectInfo(kind=kind, name=name, size=int(meta["size"]))
        except Exception as exc:
            raise self._translate(exc, f"list {kind}") from exc

    # --- writing --------------------------------------------------------------------

    def save(self, kind: ObjectKind, name: str, data: bytes | bytearray | memoryview) -> None:
        key = self._key(kind, name)
        view = memoryview(data).cast("B")
        try:
            self._obstore.put(self._store, key, view)
        except Exception as exc:
            raise self._translate(exc, f"save {kind}/{name}", view.nbytes) from exc

    def save_new(self, kind: ObjectKind, name: str,
                 data: bytes | bytearray | memoryview) -> str | None:
        """Save only if no object has that name (``If-None-Match: *``): its ETag, or None
        if one has.

        Servers that ignore the condition (rclone serve s3, older MinIO) overwrite instead:
        ``enforces_conditional_put`` tells which kind this is.
        """
        return self._put_if(kind, name, data, "create")

    def replace_if_version(self, kind: ObjectKind, name: str,
                           data: bytes | bytearray | memoryview, version: str) -> str | None:
        """Replace only if the object's ETag is still ``version`` (``If-Match``): the new
        ETag, or None if it was removed or replaced meanwhile."""
        return self._put_if(kind, name, data, {"e_tag": version})

    def _put_if(self, kind: ObjectKind, name: str, data: bytes | bytearray | memoryview,
                mode: Any) -> str | None:
        view = memoryview(data).cast("B")
        try:
            return self._put_conditionally(self._key(kind, name), view, mode)
        except Exception as exc:
            raise self._translate(exc, f"save {kind}/{name}", view.nbytes) from exc

    def _put_conditionally(self, key: str, data: bytes | memoryview, mode: Any) -> str | None:
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            result = self._obstore.put(self._store, key, data, mode=mode)
        except (AlreadyExistsError, PreconditionError):
            return None
        # A server that sends no ETag cannot be asked for If-Match later; "" still means
        # "created", and replace_if_version("") is refused by any server that checks.
        return str(result.get("e_tag") or "")

    def enforces_conditional_put(self) -> bool:
        """Whether the server refuses a create-only PUT over an existing object: probed
        once per process with a throw-away object outside every kind (so no listing of
        locks ever sees it), then remembered."""
        with self._probe_lock:
            if self._conditional_put is None:
                key = f"{_PROBE_DIR}/{os.urandom(16).hex()}"
                try:
                    self._put_conditionally(key, b"conditional put probe", "create")
                    again = self._put_conditionally(key, b"again", "create")
                    self._conditional_put = again is None
                    self._obstore.delete(self._store, key)
                except Exception as exc:
                    raise self._translate(exc, "probe conditional writes") from exc
            return self._conditional_put

    def remove(self, kind: ObjectKind, name: str) -> None:
        # S3's DELETE succeeds for a missing key; the contract wants ObjectNotFound, so
        # ask first (a concurrent remover in between is harmless: the object is gone).
        if not self.exists(kind, name):
            raise ObjectNotFound(where=self.location, name=f"{kind}/{name}")
        try:
            self._obstore.delete(self._store, self._key(kind, name))
        except FileNotFoundError:
            raise ObjectNotFound(where=self.location, name=f"{kind}/{name}") from None
        except Exception as exc:
            raise self._translate(exc, f"remove {kind}/{name}") from exc

    # --- housekeeping ---------------------------------------------------------------

    def free_space(self) -> int | None:
        return None  # a bucket has no free space to ask about (quotas: repository.quota)

    def volume_size(self) -> int | None:
        return None

    def close(self) -> None:
        """Nothing to release: obstore's connection pool goes with the store object."""

    # --- errors ---------------------------------------------------------------------

    def _translate(self, exc: BaseException, action: str, need: int = 0) -> Exception:
        from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

        status = _status(exc)
        code = _s3_code(exc)
        if isinstance(exc, FileNotFoundError) and code == "NoSuchBucket":
            return StorageError(where=self.location,
                                detail=f"cannot {action}: bucket {self.settings.bucket!r} "
                                       "does not exist")
        if status == 507 or code in _NO_SPACE_CODES or "no space left" in str(exc).lower():
            return NotEnoughSpace(where=self.location, need=human_bytes(need), have="unknown")
        if isinstance(exc, (PermissionDeniedError, UnauthenticatedError)) or status in (401,
                                                                                      403):
            return StorageError(where=self.location,
                                detail=f"cannot {action}: access denied ({code or status}); "
                                       "check the credentials and the bucket's policy")
        reason = code or (f"HTTP {status}" if status else _first_line(exc))
        detail = f"cannot {action}: {reason}"
        if status is None or status in _TRANSIENT_STATUS:
            # No status at all: the connection failed, reset or timed out.
            return TransientStorageError(where=self.location, detail=detail)
        return StorageError(where=self.location, detail=detail)


def _status(exc: BaseException) -> int | None:
    match = _STATUS.search(str(exc))
    return int(match.group(1)) if match else None


def _s3_code(exc: BaseException) -> str | None:
    match = _S3_CODE.search(str(exc))
    return match.group(1) if match else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # obstore's messages end with a debug dump; the first line says what happened.
    return (text[0] if text else type(exc).__name__)[:300]


def _object_name(kind: ObjectKind, key: str) -> str | None:
    """The object name a listed key stands for, or None for anything not ours."""
    parts = key.split("/")
    if kind == "data":
        if len(parts) != 3 or parts[0] != "data" or parts[2][:2] != parts[1]:
            return None
    elif len(parts) != 2 or parts[0] != kind:
        return None
    try:
        validate_name(kind, parts[-1], "")
    except StorageError:
        return None
    return parts[-1]


def open_s3(url: str, settings: RepositoryConfig | None = None) -> Storage:
    """Factory for ``s3://bucket/prefix``, wrapped in ``RetryingStorage``: what is still
    failing after obstore's own few retries (a burst of 503s, uploads cut off again and
    again) gets the whole call repeated with a longer backoff."""
    from vault.storage.retry import RetryingStorage

    return RetryingStorage(S3Storage(settings_from(url, settings.s3 if settings else None)))


register("s3", open_s3)

__all__ = ["S3Settings", "S3Storage", "from_restic_form", "open_s3", "parse_s3_url",
           "settings_from"]
