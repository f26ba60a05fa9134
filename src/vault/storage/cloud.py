"""What every object-store backend reached through obstore shares (S3, Google Cloud
Storage, Azure Blob): the repository layout as keys under a prefix, whole and ranged reads,
listing, conditional writes, and how obstore's errors become vault's.

Layout under the prefix mirrors the local backend (and restic's)::

    config   keys/<id>   data/<id[:2]>/<id>   index/<id>   snapshots/<id>   locks/<id> ...

A PUT to any of these services is atomic (a reader sees the old object, the new one or
none), and every save is one PUT (no multipart upload whose parts a kill would strand), so
nothing but whole objects is ever written. obstore (Rust's ``object_store``) releases the
GIL and retries 5xx/timeouts itself a few times; what still fails is mapped to vault's
errors, transient or not, so ``RetryingStorage`` can decide. A backend subclass only builds
the obstore store and names its provider's words (``bucket`` or ``container``, error codes,
version field).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import unquote, urlsplit

from vault.config.secrets import Secret
from vault.errors import ObjectNotFound, RepositoryExists, StorageError, UsageError
from vault.storage.base import (
    CONFIG_NAME,
    ObjectInfo,
    ObjectKind,
    object_dir,
    validate_kind,
    validate_name,
    validate_range,
)
from vault.storage.cloud_errors import first_line, http_status, translate_error
from vault.storage.recent_objects import RecentObjects

if TYPE_CHECKING:
    from vault.storage.base import Storage

# Where the conditional-write probe puts its throw-away object: not a kind, never listed.
_PROBE_DIR = "probe"


def parse_bucket_url(url: str, scheme: str, name: re.Pattern[str], noun: str,
                     table: str) -> tuple[str, str]:
    """``scheme://bucket/some/prefix`` -> ("bucket", "some/prefix"); refuse credentials,
    queries, a bucket (``noun``) name that does not match ``name``, or a bad prefix. What a
    URL cannot say belongs in the config ``table``."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"a {scheme}:// URL must not contain credentials; use {table} "
                         "secret references or the environment")
    if parts.query or parts.fragment:
        raise UsageError(f"a {scheme}:// URL takes no query; set the rest in {table}")
    bucket = parts.hostname or ""
    if name.fullmatch(bucket) is None:
        raise UsageError(f"not a valid {noun} name in the {scheme}:// URL: {bucket!r}")
    prefix = unquote(parts.path).strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise UsageError(f"the prefix {prefix!r} has an empty, '.' or '..' part")
    return bucket, prefix


def retrying(storage: Storage) -> Storage:
    """``storage`` wrapped in ``RetryingStorage``: what still fails after obstore's own
    few retries (a burst of 503s, uploads cut off again and again) gets the whole call
    repeated with a longer backoff."""
    from vault.storage.retry import RetryingStorage

    return RetryingStorage(storage)


def client_options(endpoint: str | None) -> dict[str, Any]:
    """obstore's HTTP client settings: plain HTTP only for an explicit http:// endpoint
    (an emulator or a server on the LAN), bounded connect and request times."""
    return {"allow_http": bool(endpoint and endpoint.startswith("http:")),
            "connect_timeout": timedelta(seconds=10), "timeout": timedelta(minutes=5)}


#: obstore's own retries: a few quick ones; RetryingStorage repeats the whole call later.
RETRY_CONFIG: dict[str, Any] = {
    "max_retries": 3, "retry_timeout": timedelta(seconds=60),
    "backoff": {"init_backoff": timedelta(milliseconds=200),
                "max_backoff": timedelta(seconds=5), "base": 2}}


class CloudSettings(Protocol):
    """What every backend's settings tell: where the objects are (and, in a field named
    after the class's ``container_noun``, the bucket or container)."""

    @property
    def prefix(self) -> str: ...
    @property
    def endpoint(self) -> str | None: ...


class ObjectStoreStorage:
    """Storage under a prefix of an obstore ``store``; see the module docstring.
    Subclasses build the store and may override the class attributes below."""

    #: what the provider calls the top-level namespace, for messages
    container_noun: ClassVar[str] = "bucket"
    #: error codes meaning the bucket/container itself does not exist
    missing_container_codes: ClassVar[frozenset[str]] = frozenset({"NoSuchBucket"})
    no_space_codes: ClassVar[frozenset[str]] = frozenset(
        {"QuotaExceeded", "InsufficientStorage", "EntityTooLarge"})
    #: which field of obstore's PutResult identifies a version for a conditional update:
    #: the ETag (S3, Azure) or the object generation (GCS)
    version_field: ClassVar[str] = "e_tag"

    #: the URL scheme, for messages
    scheme: ClassVar[str]
    settings: CloudSettings

    def __init__(self, settings: CloudSettings) -> None:
        import obstore  # heavy (a Rust extension): only when an object store is used

        self._obstore = obstore
        self.settings = settings
        self._container = str(getattr(settings, self.container_noun))
        where = f"{self.scheme}://{self._container}/{settings.prefix}".rstrip("/")
        #: shown in messages: never a credential (those live in the store's config)
        self.location = f"{where} at {settings.endpoint}" if settings.endpoint else where
        try:
            self._store = self.make_store(settings)
        except Exception as exc:  # obstore refuses the configuration (a malformed key, ...)
            raise StorageError(where=self.location,
                               detail=f"cannot open: {_without_secrets(exc, settings)}"
                               ) from None
        self._conditional_put: bool | None = None
        self._ranges_ignored = False
        self._recent_packs = RecentObjects()
        self._probe_lock = threading.Lock()

    @staticmethod
    def make_store(settings: Any) -> Any:
        """The obstore store for ``settings`` (each backend's own)."""
        raise NotImplementedError

    # --- layout ---------------------------------------------------------------------

    def _key(self, kind: ObjectKind, name: str) -> str:
        validate_name(kind, name, self.location)
        return "/".join((*object_dir(kind, name), name))

    def create(self) -> None:
        if self.exists("config", CONFIG_NAME):
            raise RepositoryExists(repo=self.location)
        # Nothing to make (no directories); listing proves the bucket is there and the
        # credentials may read it, so init fails now rather than at the first save.
        for _ in self.list("keys"):
            break

    # --- reading --------------------------------------------------------------------

    def exists(self, kind: ObjectKind, name: str) -> bool:
        try:
            self._obstore.head(self._store, self._key(kind, name))
            return True
        except FileNotFoundError:
            return False
        except StorageError:
            raise  # a refused name
        except Exception as exc:
            raise self._translate(exc, f"check {kind}/{name}") from exc

    def stat(self, kind: ObjectKind, name: str) -> ObjectInfo:
        key = self._key(kind, name)
        try:
            meta = self._obstore.head(self._store, key)
        except FileNotFoundError:
            raise ObjectNotFound(where=self.location, name=f"{kind}/{name}") from None
        except Exception as exc:
            raise self._translate(exc, f"stat {kind}/{name}") from exc
        return ObjectInfo(kind=kind, name=name, size=int(meta["size"]))

    def load(
        self, kind: ObjectKind, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        validate_range(offset, length, self.location, f"{kind}/{name}")
        try:
            key = self._key(kind, name)
            if length is None and offset == 0:
                return bytes(self._obstore.get(self._store, key).bytes())
            if length == 0 or (length is None and offset > 0):
                return self._load_to_end_or_empty(kind, name, key, offset, length)
            assert length is not None
            data = self._get_range(key, offset, length, immutable=kind == "data")
        except FileNotFoundError:
            raise ObjectNotFound(where=self.location, name=f"{kind}/{name}") from None
        except StorageError:
            raise
        except Exception as exc:
            if http_status(exc) == 416:
                raise self._out_of_range(kind, name, offset, length) from None
            raise self._translate(exc, f"read {kind}/{name}") from exc
        if len(data) != length:
            # A range past the end is answered with what there is; a short read means a
            # stale index or a truncated object, so say so rather than hand back less.
            raise self._out_of_range(kind, name, offset, length)
        return bytes(data)

    def _get_range(self, key: str, offset: int, length: int, *,
                   immutable: bool = False) -> bytes | memoryview:
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
        def fetch() -> bytes:
            return bytes(self._obstore.get(self._store, key).bytes())

        whole = self._recent_packs.get(key, fetch) if immutable else fetch()
        if len(whole) < offset + length:
            self._recent_packs.forget(key)  # short: never serve that copy again
        return memoryview(whole)[offset:offset + length]

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
            # One PUT, never a multipart upload: a process killed in the middle of a
            # multipart upload leaves its parts on the server, invisible to listings but
            # billed, and obstore cannot list them to clean up. Objects are at most a pack
            # (<= 128 MiB, far below a single PUT's limit); packs upload in parallel anyway.
            self._obstore.put(self._store, key, view, use_multipart=False)
        except Exception as exc:
            raise self._translate(exc, f"save {kind}/{name}", view.nbytes) from exc

    def save_new(self, kind: ObjectKind, name: str,
                 data: bytes | bytearray | memoryview) -> str | None:
        """Save only if no object has that name (``If-None-Match: *``; on GCS
        ``if-generation-match: 0``): its version tag, or None if one has.

        Servers that ignore the condition (rclone serve s3, older MinIO) overwrite instead:
        ``enforces_conditional_put`` tells which kind this is.
        """
        return self._put_if(kind, name, data, "create")

    def replace_if_version(self, kind: ObjectKind, name: str,
                           data: bytes | bytearray | memoryview, version: str) -> str | None:
        """Replace only if the object is still ``version`` (``If-Match`` on its ETag; on
        GCS its generation): the new version tag, or None if it was removed or replaced
        meanwhile."""
        return self._put_if(kind, name, data, {self.version_field: version})

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
        # A server that sends no version cannot be asked for If-Match later; "" still
        # means "created", and replace_if_version("") is refused by any server that checks.
        return str(result.get(self.version_field) or "")

    def enforces_conditional_put(self) -> bool:
        """Whether the server refuses both a create-only PUT over an existing object and
        a replace of a version that is no longer current (what the lock's heartbeat
        relies on). Probed once per process with a throw-away object outside every kind
        (so no listing of locks ever sees it), then remembered."""
        with self._probe_lock:
            if self._conditional_put is None:
                key = f"{_PROBE_DIR}/{os.urandom(16).hex()}"
                try:
                    self._conditional_put = self._probe_conditions(key)
                    self._obstore.delete(self._store, key)
                except Exception as exc:
                    raise self._translate(exc, "probe conditional writes") from exc
            return self._conditional_put

    def _probe_conditions(self, key: str) -> bool:
        first = self._put_conditionally(key, b"conditional put probe", "create")
        if self._put_conditionally(key, b"again", "create") is not None or not first:
            return False
        # The first version, replaced once, must not be replaceable a second time.
        if self._put_conditionally(key, b"second", {self.version_field: first}) is None:
            return False
        return self._put_conditionally(key, b"stale", {self.version_field: first}) is None

    def remove(self, kind: ObjectKind, name: str) -> None:
        # A DELETE may succeed for a missing key (S3 does); the contract wants
        # ObjectNotFound, so ask first (a concurrent remover in between is harmless).
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

    # --- errors ------------------------------------------------------------------------

    def _translate(self, exc: BaseException, action: str, need: int = 0) -> Exception:
        return translate_error(exc, action, self.location, need=need,
                               container=f"{self.container_noun} {self._container!r}",
                               missing_container_codes=self.missing_container_codes,
                               no_space_codes=self.no_space_codes)


def _without_secrets(exc: BaseException, settings: object) -> str:
    """obstore's first line about a refused configuration, with any secret of
    ``settings`` blanked out (none was seen in one, but a message must never carry it)."""
    text = first_line(exc)
    # a NamedTuple (GCS) or a dataclass (S3, Azure)
    values = tuple(settings) if isinstance(settings, tuple) else tuple(vars(settings).values())
    for value in values:
        if isinstance(value, Secret) and value:
            text = text.replace(value, "***")
    return text


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
