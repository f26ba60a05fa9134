"""How an obstore error becomes one of vault's: a one-line message, ``NotEnoughSpace`` for a
full target, and transient (a retry may cure it) or permanent, so ``RetryingStorage`` can
decide. obstore's messages carry the HTTP status and, for S3, Azure and the GCS XML API
alike, the body's ``<Error><Code>...</Code>``; both are read from the text."""

from __future__ import annotations

import re

from vault.errors import NotEnoughSpace, StorageError, TransientStorageError
from vault.foundation.units import human_bytes

_STATUS = re.compile(r"status code: (\d{3})")
_ERROR_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
# HTTP answers that a second attempt can cure: throttling, timeouts, server trouble.
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def translate_error(exc: BaseException, action: str, location: str, *, need: int,
                    container: str, missing_container_codes: frozenset[str],
                    no_space_codes: frozenset[str]) -> Exception:
    """The vault error for ``exc`` raised while trying to ``action`` (``container`` names
    the bucket or container for messages)."""
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    status = http_status(exc)
    code = error_code(exc)
    if code in missing_container_codes:
        return StorageError(where=location, detail=f"cannot {action}: {container} does not "
                                                   "exist")
    if status == 507 or code in no_space_codes or "no space left" in str(exc).lower():
        return NotEnoughSpace(where=location, need=human_bytes(need), have="unknown")
    if isinstance(exc, (PermissionDeniedError, UnauthenticatedError)) or status in (401, 403):
        return StorageError(where=location,
                            detail=f"cannot {action}: access denied ({code or status}); "
                                   f"check the credentials and the permissions on {container}")
    reason = code or (f"HTTP {status}" if status else first_line(exc))
    detail = f"cannot {action}: {reason}"
    if status is None or status in _TRANSIENT_STATUS:
        # No status at all: the connection failed, reset or timed out.
        return TransientStorageError(where=location, detail=detail)
    return StorageError(where=location, detail=detail)


def http_status(exc: BaseException) -> int | None:
    match = _STATUS.search(str(exc))
    return int(match.group(1)) if match else None


def error_code(exc: BaseException) -> str | None:
    match = _ERROR_CODE.search(str(exc))
    return match.group(1) if match else None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # obstore's messages end with a debug dump; the first line says what happened.
    return (text[0] if text else type(exc).__name__)[:300]
