"""vault.toml: the models (value types in `vault.config.types`, each source type's model in
its package) and loading with precedence.

Precedence, highest first: command-line flags (`overrides`) > `VAULT_*` environment
variables > the config file > built-in defaults. Every model forbids unknown keys, so a
typo is an error rather than a silently ignored setting. Secrets are references
(`vault.config.secrets.SecretRef`), never values. docs/config.md documents every key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from vault.config import repositories
from vault.config.document import (
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
from vault.config.source_parts import SourceConfigBase
from vault.config.types import (
    ByteSize,
    ConfigPath,
    Duration,
    EndpointUrl,
    HttpUrl,
    Name,
    NonNegative,
    Percent,
    Port,
    Strict,
    Tag,
    checked_url,
    cron_rule,
    email_rule,
    fail_at,
    repository_url_rule,
    timezone_rule,
)
from vault.errors import ConfigError, ConfigInvalid
from vault.foundation import paths

__all__ = [
    "Problem",
    "SecretRef",
    "SourceConfig",
    "VaultConfig",
    "check_config_file",
    "load_config",
]

NotifyEvent = Literal["success", "failure", "partial", "low_storage", "missed"]
DEFAULT_NOTIFY_ON: list[NotifyEvent] = ["failure", "partial", "low_storage", "missed"]

# --- models --------------------------------------------------------------------------------


class S3Config(Strict):
    """`[repository.s3]`: how to reach an `s3://bucket/prefix` repository. Unset keys come
    from the standard AWS environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, AWS_REGION, ...)."""

    endpoint: EndpointUrl | None = None
    region: str | None = None
    # Path-style requests (http://host/bucket/key), which MinIO, rclone and most
    # self-hosted servers need; AWS itself prefers virtual-hosted style.
    path_style: bool | None = None
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    session_token: SecretRef | None = None


class GcsConfig(Strict):
    """`[repository.gcs]`: how to reach a `gs://bucket/prefix` repository. Unset: the
    standard Google environment (GOOGLE_SERVICE_ACCOUNT, GOOGLE_APPLICATION_CREDENTIALS, ...)."""

    # Another GCS XML API server than storage.googleapis.com (a proxy, an emulator).
    endpoint: EndpointUrl | None = None
    # A service account's JSON key: a file (keep it 0600), or its content by reference.
    service_account_path: ConfigPath | None = None
    service_account_key: SecretRef | None = None


class AzureConfig(Strict):
    """`[repository.azure]`: how to reach an `az://container/prefix` repository. Unset: the
    standard Azure environment (AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY, ...)."""

    # The blob service URL, account included for path-style servers (Azurite:
    # http://127.0.0.1:10000/devstoreaccount1); unset: https://ACCOUNT.blob.core.windows.net
    endpoint: EndpointUrl | None = None
    account: str | None = None
    account_key: SecretRef | None = None
    sas_token: SecretRef | None = None
    # AccountName=...;AccountKey=...;BlobEndpoint=... as the Azure portal shows it
    connection_string: SecretRef | None = None


class SftpConfig(Strict):
    """`[repository.sftp]`: how to log in to an `sftp://user@host:port/path` repository.
    Unset: ~/.ssh/known_hosts, the ssh agent and ~/.ssh/id_* keys, as ssh does."""

    known_hosts: ConfigPath | None = None
    identity_file: ConfigPath | None = None
    key_passphrase: SecretRef | None = None
    password: SecretRef | None = None


class RepositoryConfig(Strict):
    url: Annotated[str, AfterValidator(repository_url_rule)] = Field(
        default_factory=lambda: str(paths.default_repository_path())
    )
    password: SecretRef | None = None
    compression_level: int = Field(3, ge=1, le=22)
    pack_size_mib: int = Field(16, ge=4, le=128)
    # FastCDC caps a maximum chunk (4 x the average) at 16 MiB
    chunk_avg_kib: int = Field(1024, ge=64, le=4096)
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
    # Bandwidth for object bytes, in KiB/s (None: unlimited); --limit-upload and
    # --limit-download override them (docs/storage.md#bandwidth-limits).
    limit_upload: int | None = Field(None, ge=1)
    limit_download: int | None = Field(None, ge=1)
    s3: S3Config | None = None
    sftp: SftpConfig | None = None
    gcs: GcsConfig | None = None
    azure: AzureConfig | None = None


class NamedRepository(RepositoryConfig):
    """`[[repositories]]`: one of several repositories, by name (vault.config.repositories)."""

    name: Name
    default: bool = False

    def settings(self) -> RepositoryConfig:
        """The entry as a plain `[repository]` table."""
        fields = {key: getattr(self, key) for key in RepositoryConfig.model_fields}
        return RepositoryConfig.model_construct(
            self.model_fields_set & set(RepositoryConfig.model_fields), **fields)


class JournalConfig(Strict):
    path: ConfigPath | None = None


class QueueConfig(Strict):
    url: (
        Annotated[str, AfterValidator(lambda url: checked_url(url, "sqlite", "redis", "rediss"))]
        | None
    ) = None
    password: SecretRef | None = None
    workers: int = Field(1, ge=1, le=64)


class BackupDefaults(Strict):
    exclude: list[str] = []
    exclude_file: ConfigPath | None = None
    exclude_larger_than: ByteSize | None = None
    one_file_system: bool = False
    tags: list[Tag] = []


class FilesSourceConfig(SourceConfigBase):
    type: Literal["files"]
    name: Name
    paths: list[ConfigPath] = Field(min_length=1)
    exclude: list[str] = []
    include: list[str] = []


def _source_config_models() -> tuple[type[SourceConfigBase], ...]:
    """`files`, then the model of every source type installed under the `vault.sources`
    entry points (pyproject.toml), by name: the one list of source types, so a new type is
    its own package plus one line there (docs/architecture.md)."""
    models: list[type[SourceConfigBase]] = [FilesSourceConfig]
    for entry in sorted(entry_points(group="vault.sources"), key=lambda entry: entry.name):
        model = entry.load()
        if model not in models:
            models.append(model)
    return tuple(models)


SOURCE_CONFIG_MODELS = _source_config_models()
if TYPE_CHECKING:
    # Known only at run time (installed entry points); code reads what every entry has, and
    # narrows with isinstance for the rest.
    SourceConfig = SourceConfigBase
else:
    SourceConfig = Annotated[Union[SOURCE_CONFIG_MODELS], Field(discriminator="type")]  # noqa: UP007


class Retention(Strict):
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


class Schedule(Strict):
    name: Name
    cron: Annotated[str, AfterValidator(cron_rule)]
    timezone: Annotated[str, AfterValidator(timezone_rule)] = "UTC"
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
    #: [[repositories]] names a successful run's snapshots are copied into (`vault copy`)
    copy_to: list[str] = []

    @model_validator(mode="after")
    def _does_something(self) -> Schedule:
        if not self.backup and not self.verify:
            raise fail_at(("backup",), "a schedule with backup = false must verify "
                                     "(verify = true), or it does nothing")
        if self.read_data_subset is not None and not self.verify:
            raise fail_at(("read_data_subset",), "read_data_subset needs verify = true")
        return self


class EmailNotification(Strict):
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
    sender: Annotated[str, AfterValidator(email_rule)]
    recipients: list[Annotated[str, AfterValidator(email_rule)]] = Field(min_length=1)
    on: list[NotifyEvent] = Field(default_factory=lambda: list(DEFAULT_NOTIFY_ON))

    @model_validator(mode="after")
    def _consistent(self) -> EmailNotification:
        if self.ssl and self.starttls and "starttls" in self.model_fields_set:
            message = "ssl = true (implicit TLS) and starttls = true exclude each other"
            raise fail_at(("starttls",), message)
        if (self.username is None) != (self.password is None):
            missing = "password" if self.password is None else "username"
            raise fail_at((missing,), "SMTP login needs both username and password")
        return self

    def port(self) -> int:
        return self.smtp_port or (465 if self.ssl else 587)

    def security(self) -> Literal["ssl", "starttls", "plain"]:
        """How the connection is protected: implicit TLS wins over STARTTLS; plain only
        when both are off."""
        if self.ssl:
            return "ssl"
        return "starttls" if self.starttls else "plain"


class WebhookNotification(Strict):
    type: Literal["webhook"]
    name: Name
    url: HttpUrl
    token: SecretRef | None = None
    signing_secret: SecretRef | None = None
    ca_file: ConfigPath | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    on: list[NotifyEvent] = Field(default_factory=lambda: list(DEFAULT_NOTIFY_ON))


Notification = Annotated[EmailNotification | WebhookNotification, Field(discriminator="type")]


class RestoreConfig(Strict):
    """`[restore]`: commands run around every real restore, e.g. to pause the application
    that writes to the target (`systemctl stop app` before, `systemctl start app` after).
    Run with `sh -c`; a failing or timed-out `pre_hook` aborts the restore before anything
    is written; a failing `post_hook` is a warning."""

    pre_hook: str | None = Field(None, min_length=1)
    post_hook: str | None = Field(None, min_length=1)
    hook_timeout: float = Field(300.0, gt=0, le=86400)  # seconds, per hook


class VerifyConfig(Strict):
    """`[verify]`: how old the last successful `vault verify` may be before `vault status`
    raises an alert (`status --check` exits 1). Schedule a verify (`vault schedule add
    --verify`) to keep it fresh."""

    max_age: Duration = timedelta(days=30)


class SourceGroup(Strict):
    """Sources backed up together (`vault backup --group NAME`): one group id, one time."""

    name: Name
    sources: list[str] = Field(min_length=1)


class VaultConfig(Strict):
    """The whole of vault.toml."""

    repository: RepositoryConfig = Field(default_factory=RepositoryConfig)
    repositories: list[NamedRepository] = []
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

    @model_validator(mode="after")
    def _choose_repository(self, info: ValidationInfo) -> VaultConfig:
        repositories.check_copy_targets(self.schedules, self.repositories)
        if not self.repositories:
            return self
        repositories.check_entries(self.repositories)
        context = info.context or {}
        layered = self.repository.model_fields_set if "repository" in self.model_fields_set \
            else set()
        if layered and context.get(repositories.FILE_HAS_REPOSITORY, True):
            raise fail_at(("repository",), "[repository] and [[repositories]] exclude each "
                                           "other: move its settings into a [[repositories]] entry")
        self.repository = repositories.chosen_repository(
            self.repositories, self.repository, layered, context.get(repositories.CHOSEN_NAME))
        return self

    def repository_named(self, name: str) -> RepositoryConfig:
        """The settings of `[[repositories]]` entry `name` (ConfigError when none)."""
        return repositories.entry_named(self.repositories, name).settings()

    def repository_name(self) -> str | None:
        """The name of the entry the command uses (None: a `[repository]` table or a URL)."""
        return next((e.name for e in self.repositories if e.url == self.repository.url), None)

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
    name, overrides, env = repositories.name_selector(data, overrides or {}, env)
    context = {repositories.FILE_HAS_REPOSITORY: "repository" in data,
               repositories.CHOSEN_NAME: name}
    origins = layer_environment(data, env, _ENV_SECTIONS)
    layer_overrides(data, overrides, origins)
    try:
        return VaultConfig.model_validate(data, context=context)
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
