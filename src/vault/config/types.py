"""The value types vault.toml is written in (sizes, durations, names, URLs, cron, zones) and
the strict base model every table uses. Source packages build their `[[sources]]` models
from these (`vault.sources.<type>.config`)."""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from vault.config.document import RESTIC_LOCATION
from vault.foundation.units import parse_bytes

# --- value types -------------------------------------------------------------------------

# "m" is a month (as in restic's --keep-within 1y6m); minutes are written "min".
_DURATION_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800, "m": 2592000}
_DURATION_UNITS["y"] = 365 * 86400
_DURATION_PART = re.compile(r"(\d+)\s*(min|[smhdwy])\s*")
CRON_PRESETS = {
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 0",
    "monthly": "0 0 1 * *",
}
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def parse_byte_size(value: object) -> int:
    """512, "512", "100K", "1.5G", "2GiB", "10MB" -> bytes. K, M, G, T are powers of 1024
    however they are spelled (see vault.foundation.units: sizes are compared with `df -h`)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if not isinstance(value, str):
        kind = type(value).__name__
        raise ValueError(f"expected a size such as 512, 100K, 1.5G or 2GiB (got {kind})")
    return parse_bytes(value)


def parse_duration(value: object) -> timedelta:
    """ "7d", "2w", "1y6m", "36h", "90min", "45s" or whole seconds -> timedelta.
    A month is 30 days and a year 365 days."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    if not isinstance(value, str):
        kind = type(value).__name__
        raise ValueError(f"expected a duration such as 36h, 7d or 1y6m (got {kind})")
    text = value.strip().lower()
    parts = _DURATION_PART.findall(text)
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"not a duration: {value!r} (write e.g. 36h, 7d, 2w, 1y6m)")
    return timedelta(seconds=sum(int(n) * _DURATION_UNITS[unit] for n, unit in parts))


def format_duration(duration: timedelta) -> str:
    """timedelta -> "7d", "1d12h", "1h30min", "45s": the spelling parse_duration reads
    back (days at most: a month or a year is not a whole number of them)."""
    seconds = int(duration.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    units = ((days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s"))
    return "".join(f"{value}{unit}" for value, unit in units if value) or "0s"


def parse_percent(value: object) -> float:
    """ "80%", "80", 80 or 80.5 -> 80.0 (a share of something, 1 to 100)."""
    if isinstance(value, bool):
        raise ValueError("expected a percentage such as \"80%\"")
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"not a percentage: {value!r} (write e.g. \"80%\")") from None
    if not isinstance(value, int | float):
        kind = type(value).__name__
        raise ValueError(f"expected a percentage such as \"80%\" (got {kind})")
    if not 1 <= value <= 100:
        raise ValueError(f"a percentage between 1% and 100%, not {value}%")
    return float(value)


def absolute_path(value: Path) -> Path:
    # vault runs from cron and a worker whose working directory is not the user's.
    value = value.expanduser()
    if not value.is_absolute():
        raise ValueError(f"must be an absolute path (~ is expanded), not {str(value)!r}")
    return value


def name_rule(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lowercase letters, digits, '_', '.' and '-',"
            " starting with a letter or digit"
        )
    return value


def tag_rule(value: str) -> str:
    if not value or any(char.isspace() or char == "," for char in value):
        raise ValueError(f"{value!r} is not a valid tag (no spaces or commas)")
    return value


def cron_rule(value: str) -> str:
    fields = CRON_PRESETS.get(value.strip().lower().lstrip("@"), value).split()
    if len(fields) != 5 or not croniter.is_valid(" ".join(fields)):
        raise ValueError(
            f"not a valid cron expression: {value!r} (5 fields: minute hour day-of-month"
            " month day-of-week, or hourly, daily, weekly, monthly)"
        )
    return " ".join(fields)


def timezone_rule(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        hint = "use an IANA name such as 'Europe/Berlin'"
        raise ValueError(f"unknown timezone {value!r} ({hint})") from None
    return value


def email_rule(value: str) -> str:
    _, address = parseaddr(value)
    if "@" not in address or any(char.isspace() for char in address):
        raise ValueError(f"not an email address: {value!r}")
    return value


def checked_url(value: str, *schemes: str) -> str:
    """A URL with one of `schemes` (any, if none given) and no password in it."""
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if not _SCHEME.match(value) or (schemes and scheme not in schemes):
        raise ValueError(f"not a {' or '.join(f'{s}://' for s in schemes)} URL: {value!r}")
    if scheme in ("file", "sqlite") and not parts.path.startswith("/"):
        raise ValueError(f"{scheme}:// needs an absolute path ({scheme}:///path), not {value!r}")
    if scheme not in ("file", "sqlite") and not parts.hostname:
        raise ValueError(f"the URL {value!r} has no host")
    if parts.password is not None:
        # It would put a secret in the config file; the password/token keys are for that.
        raise ValueError("the URL contains a password; use a password or token key instead")
    return value


def repository_url_rule(value: str) -> str:
    # Any scheme: the storage registry decides which ones exist (plugins add their own).
    if RESTIC_LOCATION.match(value):
        return value  # the storage registry accepts or refuses it, with the known schemes
    return checked_url(value) if _SCHEME.match(value) else str(absolute_path(Path(value)))


ByteSize = Annotated[int, BeforeValidator(parse_byte_size)]
# JSON (a journaled schedule definition) spells it as vault.toml does, so it reads back.
Duration = Annotated[timedelta, BeforeValidator(parse_duration),
                     PlainSerializer(format_duration, return_type=str, when_used="json")]
Percent = Annotated[float, BeforeValidator(parse_percent)]
ConfigPath = Annotated[Path, AfterValidator(absolute_path)]
Name = Annotated[str, AfterValidator(name_rule)]
Tag = Annotated[str, AfterValidator(tag_rule)]
NonNegative = Annotated[int, Field(ge=0)]
Port = Annotated[int, Field(ge=1, le=65535)]
HttpUrl = Annotated[str, AfterValidator(lambda url: checked_url(url, "http", "https"))]


def endpoint_rule(value: str) -> str:
    """A storage endpoint: an http(s) URL without a query or fragment, which could carry a
    token (an Azure SAS) into every message that names the repository."""
    checked_url(value, "http", "https")
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        raise ValueError("an endpoint takes no query (?...) or fragment (#...): give a "
                         "SAS token or key with its own key, by secret reference")
    return value


EndpointUrl = Annotated[str, AfterValidator(endpoint_rule)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def fail_at(loc: tuple[str | int, ...], message: str) -> ValidationError:
    """A validation error at `loc` below the model raising it, so the line number points
    at the offending key rather than at the whole table."""
    error = InitErrorDetails(type=PydanticCustomError("invalid", message), loc=loc, input=None)
    return ValidationError.from_exception_data("vault.toml", [error])
