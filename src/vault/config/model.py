"""vault.toml: the models, the value types it is written in, and loading with precedence.

Precedence, highest first: command-line flags (`overrides`) > `VAULT_*` environment
variables > the config file > built-in defaults. Every model forbids unknown keys, so a
typo is an error rather than a silently ignored setting. Secrets are references
(`vault.config.secrets.SecretRef`), never values. docs/config.md documents every key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from vault.config.document import (
    RESTIC_LOCATION,
    Problem,
    layer_environment,
    layer_overrides,
    parse_toml,
    problems_from_error,
    read_text,
    reference_errors,
    with_errors,
)
from vault.config.secrets import SecretRef
from vault.errors import ConfigError, ConfigInvalid
from vault.foundation import paths
from vault.foundation.units import parse_bytes

__all__ = [
    "ByteSize",
    "Duration",
    "Problem",
    "SecretRef",
    "VaultConfig",
    "check_config_file",
    "format_duration",
    "load_config",
    "parse_byte_size",
    "parse_duration",
    "parse_percent",
]

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


def _absolute_path(value: Path) -> Path:
    # vault runs from cron and a worker whose working directory is not the user's.
    value = value.expanduser()
    if not value.is_absolute():
        raise ValueError(f"must be an absolute path (~ is expanded), not {str(value)!r}")
    return value


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lowercase letters, digits, '_', '.' and '-',"
            " starting with a letter or digit"
        )
    return value


def _tag(value: str) -> str:
    if not value or any(char.isspace() or char == "," for char in value):
        raise ValueError(f"{value!r} is not a valid tag (no spaces or commas)")
    return value


def _cron(value: str) -> str:
    fields = CRON_PRESETS.get(value.strip().lower().lstrip("@"), value).split()
    if len(fields) != 5 or not croniter.is_valid(" ".join(fields)):
        raise ValueError(
            f"not a valid cron expression: {value!r} (5 fields: minute hour day-of-month"
            " month day-of-week, or hourly, daily, weekly, monthly)"
        )
    return " ".join(fields)


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        hint = "use an IANA name such as 'Europe/Berlin'"
        raise ValueError(f"unknown timezone {value!r} ({hint})") from None
    return value


def _email(value: str) -> str:
    _, address = parseaddr(value)
    if "@" not in address or any(char.isspace() for char in address):
        raise ValueError(f"not an email address: {value!r}")
    return value


def _url(value: str, *schemes: str) -> str:
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


def _repository_url(value: str) -> str:
    # Any scheme: the storage registry decides which ones exist (plugins add their own).
    if RESTIC_LOCATION.match(value):
        return value  # the storage registry accepts or refuses it, with the known schemes
    return _url(value) if _SCHEME.match(value) else str(_absolute_path(Path(value)))


ByteSize = Annotated[int, BeforeValidator(parse_byte_size)]
# JSON (a journaled schedule definition) spells it as vault.toml does, so it reads back.
Duration = Annotated[timedelta, BeforeValidator(parse_duration),
                     PlainSerializer(format_duration, return_type=str, when_used="json")]
Percent = Annotated[float, BeforeValidator(parse_percent)]
ConfigPath = Annotated[Path, AfterValidator(_absolute_path)]
Name = Annotated[str, AfterValidator(_name)]
Tag = Annotated[str, AfterValidator(_tag)]
NonNegative = Annotated[int, Field(ge=0)]
Port = Annotated[int, Field(ge=1, le=65535)]
NotifyEvent = Literal["success", "failure", "partial", "low_storage", "missed"]
DEFAULT_NOTIFY_ON: list[NotifyEvent] = ["failure", "partial", "low_storage", "missed"]

# --- models --------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _fail(loc: tuple[str | int, ...], message: str) -> ValidationError:
    """A validation error at `loc` below the model raising it, so the line number points
    at the offending key rather than at the whole table."""
    error = InitErrorDetails(type=PydanticCustomError("invalid", message), loc=loc, input=None)
    return ValidationError.from_exception_data("vault.toml", [error])


class S3Config(_Strict):
    """`[repository.s3]`: how to reach an `s3://bucket/prefix` repository. Unset keys come
    from the standard AWS environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, AWS_REGION, ...)."""

    endpoint: Annotated[str, AfterValidator(lambda url: _url(url, "http", "https"))] | None = None
    region: str | None = None
    # Path-style requests (http://host/bucket/key), which MinIO, rclone and most
    # self-hosted servers need; AWS itself prefers virtual-hosted style.
    path_style: bool | None = None
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    session_token: SecretRef | None = None


class SftpConfig(_Strict):
    """`[repository.sftp]`: how to log in to an `sftp://user@host:port/path` repository.
    Unset: ~/.ssh/known_hosts, the ssh agent and ~/.ssh/id_* keys, as ssh does."""

    known_hosts: ConfigPath | None = None
    identity_file: ConfigPath | None = None
    key_passphrase: SecretRef | None = None
    password: SecretRef | None = None


class RepositoryConfig(_Strict):
    url: Annotated[str, AfterValidator(_repository_url)] = Field(
        default_factory=lambda: str(paths.default_repository_path())
    )
    password: SecretRef | None = None
    compression_level: int = Field(3, ge=1, le=22)
    pack_size_mib: int = Field(16, ge=4, le=128)
    chunk_avg_kib: int = Field(1024, ge=64, le=8192)
    # The repository's stored size (packs, index, snapshots) may not pass `quota`: a
    # backup that would is refused before it writes. Crossing `warn_at` of the quota
    # journals StorageLow (docs/config.md#quotas).
    quota: ByteSize | None = None
    warn_at: Percent = 80.0
    # Free space a backup leaves on the repository's volume besides its estimate; None:
    # 1/32 of the volume, between 1 and 64 MiB (docs/config.md#free-space).
    free_space_reserve: ByteSize | None = None
    # A killed save leaves a temp file; backup and prune remove those older than this
    # (well above the longest save: the file's time moves while it is written).
    temp_file_lease: Duration = timedelta(hours=1)
    s3: S3Config | None = None
    sftp: SftpConfig | None = None


class JournalConfig(_Strict):
    path: ConfigPath | None = None


class QueueConfig(_Strict):
    url: (
        Annotated[str, AfterValidator(lambda url: _url(url, "sqlite", "redis", "rediss"))] | None
    ) = None
    password: SecretRef | None = None
    workers: int = Field(1, ge=1, le=64)


class BackupDefaults(_Strict):
    exclude: list[str] = []
    exclude_file: ConfigPath | None = None
    exclude_larger_than: ByteSize | None = None
    one_file_system: bool = False
    tags: list[Tag] = []


class FilesSourceConfig(_Strict):
    type: Literal["files"]
    name: Name
    paths: list[ConfigPath] = Field(min_length=1)
    exclude: list[str] = []
    include: list[str] = []


class SecretTableConfig(_Strict):
    """One `[[sources.secret_tables]]` entry of a SQLite or PostgreSQL source: `secret_keys`
    applied to the keys of a key/value table (`key_column`, `value_column`), else to its
    column names; the matching cells are redacted or sealed in the stored copy
    (docs/sources.md). A PostgreSQL table is "table" or "schema.table"."""

    table: str = Field(min_length=1)
    key_column: str | None = None
    value_column: str | None = None

    @model_validator(mode="after")
    def _both_columns_or_neither(self) -> SecretTableConfig:
        if (self.key_column is None) != (self.value_column is None):
            raise _fail(("key_column",), "give both key_column and value_column (a key/value "
                        "table), or neither (columns whose names match secret_keys)")
        return self


class SqliteSourceConfig(_Strict):
    type: Literal["sqlite"]
    name: Name
    path: ConfigPath
    # Secrets inside the database (e.g. API keys in a settings table): redacted or sealed
    # in the stored copy, never in the application's database.
    secret_tables: list[SecretTableConfig] = []
    secrets: Literal["redact", "encrypt"] = "redact"
    secret_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_SECRET_KEYS))
    # "backup": the online backup API, page for page (deduplicates best, see
    # docs/performance.md); "vacuum": VACUUM INTO, a compact rewrite.
    copy_method: Literal["backup", "vacuum"] = "backup"
    # A locked database is retried this many times, pauses doubling and adding up to
    # busy_seconds, before the backup of this source fails.
    busy_retries: NonNegative = 5
    busy_seconds: float = Field(default=10.0, gt=0)
    # Tables as application entities (`collection` names the table, `key` the column
    # holding the parent row's primary key), as for MongoDB.
    entities: list[EntityLevel] = []

    @model_validator(mode="after")
    def _entities_form_a_tree(self) -> SqliteSourceConfig:
        check_entity_tree(self.entities)
        return self


class PostgresSourceConfig(_Strict):
    type: Literal["postgresql"]
    name: Name
    host: str
    port: Port = 5432
    dbname: str
    user: str
    password: SecretRef | None = None
    tables: list[str] = []
    pg_dump_path: ConfigPath | None = None  # psql and pg_restore are looked up beside it
    # Secrets inside the database, as for SQLite: redacted or sealed in the stored rows.
    secret_tables: list[SecretTableConfig] = []
    secrets: Literal["redact", "encrypt"] = "redact"
    secret_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_SECRET_KEYS))
    # Tables as application entities (counts and date ranges in each snapshot), as for
    # SQLite; `collection` is "table" or "schema.table".
    entities: list[EntityLevel] = []

    @model_validator(mode="after")
    def _entities_form_a_tree(self) -> PostgresSourceConfig:
        check_entity_tree(self.entities)
        return self


class EntityLevel(_Strict):
    """One `[[sources.entities]]` entry: an application entity stored in a collection.
    A child names its `parent` entity and the `key` field of its documents that holds the
    parent document's `_id` (messages.session_id -> sessions._id)."""

    name: str = Field(min_length=1)
    collection: str = Field(min_length=1)  # "coll" in the source's database, or "db.coll"
    parent: str | None = None
    key: str | None = None
    date_field: str | None = None


def _extended_json_query(value: Any) -> dict[str, Any]:
    # A query is a TOML table or a JSON text, either in MongoDB extended JSON
    # ({"$oid": ...}, {"$date": ...}); decoded here so a typo fails at load time.
    from bson import json_util  # pymongo's bson: a runtime dependency of vault

    text = value if isinstance(value, str) else None
    if text is None:
        import json

        text = json.dumps(value, default=str)
    try:
        decoded = json_util.loads(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a MongoDB query in (extended) JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise ValueError("a query must be a JSON object such as {\"status\": \"open\"}")
    return decoded


MongoQuery = Annotated[dict[str, Any], BeforeValidator(_extended_json_query)]


class SecretCollectionConfig(_Strict):
    """One `[[sources.secret_collections]]` entry of a MongoDB source ("coll" or
    "db.coll"): `secret_keys` applied to the keys of a key/value collection (`key_field`,
    `value_field`), else to field names and dotted paths at any depth; the matching values
    are redacted or sealed in the stored documents (docs/sources.md)."""

    collection: str = Field(min_length=1)
    key_field: str | None = None
    value_field: str | None = None

    @model_validator(mode="after")
    def _both_fields_or_neither(self) -> SecretCollectionConfig:
        if (self.key_field is None) != (self.value_field is None):
            raise _fail(("key_field",), "give both key_field and value_field (a key/value "
                        "collection), or neither (fields whose names match secret_keys)")
        return self


class MongoSourceConfig(_Strict):
    type: Literal["mongodb"]
    name: Name
    url: Annotated[str, AfterValidator(lambda url: _url(url, "mongodb", "mongodb+srv"))]
    databases: list[str] = []
    collections: list[str] = []
    exclude_collections: list[str] = []
    queries: dict[str, MongoQuery] = {}
    date_field: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    password: SecretRef | None = None
    entities: list[EntityLevel] = []
    # Secrets inside documents, as for SQLite/PostgreSQL tables: redacted or sealed in the
    # stored copy, never in the application's database.
    secret_collections: list[SecretCollectionConfig] = []
    secrets: Literal["redact", "encrypt"] = "redact"
    secret_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_SECRET_KEYS))

    @model_validator(mode="after")
    def _date_range_is_ordered(self) -> MongoSourceConfig:
        if (self.since or self.until) and not self.date_field:
            raise _fail(("date_field",), "needed: since/until filter on this field")
        if self.since and self.until and _utc(self.since) >= _utc(self.until):
            raise _fail(("until",), "must be later than since")
        return self

    @model_validator(mode="after")
    def _entities_form_a_tree(self) -> MongoSourceConfig:
        check_entity_tree(self.entities)
        return self


def check_entity_tree(entities: list[EntityLevel]) -> None:
    """Entity names unique, parent and key together, parents declared, no cycle."""
    names = [entity.name for entity in entities]
    for index, entity in enumerate(entities):
        where: tuple[str | int, ...] = ("entities", index)
        if names.count(entity.name) > 1:
            raise _fail((*where, "name"), f"entity {entity.name!r} is declared twice")
        if (entity.parent is None) != (entity.key is None):
            field = "key" if entity.key is None else "parent"
            raise _fail((*where, field), "parent and key go together: the parent entity"
                        " and the field holding its _id")
        if entity.parent is not None and entity.parent not in names:
            raise _fail((*where, "parent"), f"no entity is named {entity.parent!r}")
        if _has_cycle(entities, entity):
            raise _fail((*where, "parent"), "the parents form a cycle, not a tree")


def _has_cycle(entities: list[EntityLevel], start: EntityLevel) -> bool:
    parents = {entity.name: entity.parent for entity in entities}
    seen = {start.name}
    current = start.parent
    while current is not None:
        if current in seen:
            return True
        seen.add(current)
        current = parents.get(current)
    return False


def _utc(value: datetime) -> datetime:
    # A date without a zone is UTC, as MongoDB stores dates.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


DEFAULT_SECRET_KEYS: list[str] = [
    "*password*", "*passwd*", "*passphrase*", "*_pass", "*secret*", "*token*", "*_key",
    "*apikey*", "*private_key*", "*credential*", "*auth*", "*cookie*", "*dsn*",
    "*database_url*",
]  # fmt: skip
_SQL_NAME = Annotated[str, Field(min_length=1)]


class SettingsSourceConfig(_Strict):
    type: Literal["settings"]
    name: Name
    path: ConfigPath | None = None
    format: Literal["json", "toml", "yaml", "env"] | None = None
    database: ConfigPath | None = None
    table: _SQL_NAME = "settings"
    key_column: _SQL_NAME = "key"
    value_column: _SQL_NAME = "value"
    secrets: Literal["redact", "encrypt"] = "redact"
    secret_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_SECRET_KEYS))

    @model_validator(mode="after")
    def _a_file_or_a_table(self) -> SettingsSourceConfig:
        if (self.path is None) == (self.database is None):
            message = "give either path (a settings file) or database (a SQLite settings table)"
            raise _fail(("path",), message)
        if self.database is not None and self.format is not None:
            raise _fail(("format",), "format is for a settings file, not a database table")
        return self


SourceConfig = Annotated[
    FilesSourceConfig
    | SqliteSourceConfig
    | PostgresSourceConfig
    | MongoSourceConfig
    | SettingsSourceConfig,
    Field(discriminator="type"),
]


class Retention(_Strict):
    keep_last: NonNegative | None = None
    keep_hourly: NonNegative | None = None
    keep_daily: NonNegative | None = None
    keep_weekly: NonNegative | None = None
    keep_monthly: NonNegative | None = None
    keep_yearly: NonNegative | None = None
    keep_within: Duration | None = None
    keep_tags: list[Tag] = []


_SUBSET = re.compile(r"\d+(\.\d+)?%|\d+/\d+|rotate/\d+|\d+(\.\d+)?\s*[kmgt]?i?b?",
                     re.IGNORECASE)


def _read_data_subset(value: str) -> str:
    if not _SUBSET.fullmatch(value.strip()):
        raise ValueError(f"{value!r}: expected N%, n/t, rotate/T or a size (10G)")
    if value.startswith("rotate/") and int(value.split("/")[1]) < 1:
        raise ValueError(f"{value!r}: rotate/T needs T >= 1")
    return value.strip()


class Schedule(_Strict):
    name: Name
    cron: Annotated[str, AfterValidator(_cron)]
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    sources: list[str] = []
    tags: list[Tag] = []
    backup_type: Literal["incremental", "full"] = "incremental"
    paused: bool = False
    catch_up: bool = True
    retention: Retention | None = None
    #: after its retention forgot snapshots, queue a prune (`vault prune --queue`) so
    #: their space comes back without anyone running prune
    prune: bool = False
    notify: list[str] = []
    #: back up its sources (false: a verify-only schedule)
    backup: bool = True
    #: queue a `vault verify` in each run, reading `read_data_subset` of the packs
    #: (`rotate/T`: a different T-th each day, the whole repository every T days)
    verify: bool = False
    read_data_subset: Annotated[str, AfterValidator(_read_data_subset)] | None = None

    @model_validator(mode="after")
    def _does_something(self) -> Schedule:
        if not self.backup and not self.verify:
            raise _fail(("backup",), "a schedule with backup = false must verify "
                                     "(verify = true), or it does nothing")
        if self.read_data_subset is not None and not self.verify:
            raise _fail(("read_data_subset",), "read_data_subset needs verify = true")
        return self


class EmailNotification(_Strict):
    type: Literal["email"]
    name: Name
    smtp_host: str = Field(min_length=1)
    #: default 587 with STARTTLS or plain, 465 with `ssl` (see `port()`)
    smtp_port: Port | None = None
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password: SecretRef | None = None
    ca_file: ConfigPath | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    sender: Annotated[str, AfterValidator(_email)]
    recipients: list[Annotated[str, AfterValidator(_email)]] = Field(min_length=1)
    on: list[NotifyEvent] = Field(default_factory=lambda: list(DEFAULT_NOTIFY_ON))

    @model_validator(mode="after")
    def _consistent(self) -> EmailNotification:
        if self.ssl and self.starttls and "starttls" in self.model_fields_set:
            message = "ssl = true (implicit TLS) and starttls = true exclude each other"
            raise _fail(("starttls",), message)
        if (self.username is None) != (self.password is None):
            missing = "password" if self.password is None else "username"
            raise _fail((missing,), "SMTP login needs both username and password")
        return self

    def port(self) -> int:
        return self.smtp_port or (465 if self.ssl else 587)

    def security(self) -> Literal["ssl", "starttls", "plain"]:
        """How the connection is protected: implicit TLS wins over STARTTLS; plain only
        when both are off."""
        if self.ssl:
            return "ssl"
        return "starttls" if self.starttls else "plain"


class WebhookNotification(_Strict):
    type: Literal["webhook"]
    name: Name
    url: Annotated[str, AfterValidator(lambda url: _url(url, "http", "https"))]
    token: SecretRef | None = None
    signing_secret: SecretRef | None = None
    ca_file: ConfigPath | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    on: list[NotifyEvent] = Field(default_factory=lambda: list(DEFAULT_NOTIFY_ON))


Notification = Annotated[EmailNotification | WebhookNotification, Field(discriminator="type")]


class RestoreConfig(_Strict):
    """`[restore]`: commands run around every real restore, e.g. to pause the application
    that writes to the target (`systemctl stop app` before, `systemctl start app` after).
    Run with `sh -c`; a failing or timed-out `pre_hook` aborts the restore before anything
    is written; a failing `post_hook` is a warning."""

    pre_hook: str | None = Field(None, min_length=1)
    post_hook: str | None = Field(None, min_length=1)
    hook_timeout: float = Field(300.0, gt=0, le=86400)  # seconds, per hook


class VerifyConfig(_Strict):
    """`[verify]`: how old the last successful `vault verify` may be before `vault status`
    raises an alert (`status --check` exits 1). Schedule a verify (`vault schedule add
    --verify`) to keep it fresh."""

    max_age: Duration = timedelta(days=30)


class SourceGroup(_Strict):
    """Sources backed up together (`vault backup --group NAME`): one group id, one time."""

    name: Name
    sources: list[str] = Field(min_length=1)


class VaultConfig(_Strict):
    """The whole of vault.toml."""

    repository: RepositoryConfig = Field(default_factory=RepositoryConfig)
    state_dir: ConfigPath | None = None
    cache_dir: ConfigPath | None = None
    journal: JournalConfig = Field(default_factory=JournalConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    backup: BackupDefaults = Field(default_factory=BackupDefaults)
    retention: Retention = Field(default_factory=Retention)
    restore: RestoreConfig = Field(default_factory=RestoreConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    sources: list[SourceConfig] = []
    groups: list[SourceGroup] = []
    schedules: list[Schedule] = []
    notifications: list[Notification] = []

    @model_validator(mode="wrap")
    @classmethod
    def _check_references(
        cls, data: Any, handler: ModelWrapValidatorHandler[VaultConfig]
    ) -> VaultConfig:
        # Run on the raw input, so that a bad reference is reported together with every
        # other problem instead of only once the rest of the file is right.
        problems = reference_errors(data) if isinstance(data, Mapping) else []
        try:
            config = handler(data)
        except ValidationError as error:
            if not problems:
                raise
            raise with_errors(error, problems) from None
        if problems:
            raise ValidationError.from_exception_data("vault.toml", problems)
        return config

    def resolved_state_dir(self) -> Path:
        return self.state_dir or paths.state_dir()

    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or paths.cache_dir()

    def journal_path(self) -> Path:
        return self.journal.path or self.resolved_state_dir() / "journal.db"

    def queue_url(self) -> str:
        """queue.url, or `sqlite:///<state dir>/queue.db` (the path is the URL's path)."""
        return self.queue.url or f"sqlite://{self.resolved_state_dir() / 'queue.db'}"

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(f"no source named {name!r} in the configuration")

    def group(self, name: str) -> list[SourceConfig]:
        for group in self.groups:
            if group.name == name:
                return [self.source(source) for source in group.sources]
        configured = ", ".join(g.name for g in self.groups) or "none"
        raise ConfigError(f"no group named {name!r} in the configuration"
                          f" (configured: {configured})")

    def sources_for(self, schedule: Schedule) -> list[SourceConfig]:
        """The sources a schedule backs up: the ones it names, or all when it names none."""
        return [self.source(name) for name in schedule.sources] or list(self.sources)

    def retention_for(self, schedule: Schedule) -> Retention:
        return schedule.retention or self.retention


# The tables `VAULT_<SECTION>__<KEY>` can reach: repository, journal, queue, backup,
# retention, restore.
_ENV_SECTIONS = frozenset(
    name
    for name, field in VaultConfig.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
)

# --- loading -------------------------------------------------------------------------------


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> VaultConfig:
    """The configuration: `overrides` (dotted keys from flags; None values are ignored) over
    `VAULT_*` variables in `env` (default: the process environment) over the file over
    defaults. The file is `path`, else $VAULT_CONFIG, else the XDG default if it exists;
    with none, defaults only. Raises ConfigError (file missing or unreadable) or
    ConfigInvalid, whose `problems` are `file:line: key: message` strings."""
    env = os.environ if env is None else env
    file = _config_file(path, env)
    label = str(file) if file is not None else "(no config file)"
    text = read_text(file) if file is not None else ""
    data = parse_toml(label, text)
    if isinstance(data, Problem):
        raise ConfigInvalid(label, [str(data)])
    origins = layer_environment(data, env, _ENV_SECTIONS)
    layer_overrides(data, overrides or {}, origins)
    try:
        return VaultConfig.model_validate(data)
    except ValidationError as error:
        # `from None`: pydantic's own message quotes input values, which may be secrets.
        problems = problems_from_error(error, file=label, text=text, data=data, origins=origins)
        raise ConfigInvalid(label, [str(problem) for problem in problems]) from None


def check_config_file(path: Path) -> list[Problem]:
    """Every problem in the file as written (no environment, no flags); [] when it is
    valid. Raises ConfigError when the file cannot be read."""
    text = read_text(path)
    data = parse_toml(str(path), text)
    if isinstance(data, Problem):
        return [data]
    try:
        VaultConfig.model_validate(data)
    except ValidationError as error:
        return problems_from_error(error, file=str(path), text=text, data=data)
    return []


def _config_file(path: Path | None, env: Mapping[str, str]) -> Path | None:
    if path is None and env.get("VAULT_CONFIG"):
        path = Path(env["VAULT_CONFIG"])
    if path is None:
        default = paths.default_config_file()
        return default if default.is_file() else None
    # A file the user named must exist: silently using defaults would back up nothing.
    path = path.expanduser()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return path
