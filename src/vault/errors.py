"""The error tree every layer raises and the CLI maps to exit codes.

As in borg, an error's docstring is its message template and its class carries the exit
code, so one place defines what the user reads and what a script sees:

    class NotEnoughSpace(VaultError):
        '''not enough space in {where}: need ~{need}, have {have}'''

    raise NotEnoughSpace(where="/srv/repo", need="2.0 GiB", have="1.1 GiB")

Exit codes (documented in docs/cli.md):
    0  success
    1  the operation failed (nothing half-done is left behind)
    2  bad usage or configuration
    3  completed, but some sources or files could not be read (the snapshot is partial)
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

from typing import Any, ClassVar

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


class VaultError(Exception):
    """{detail}"""

    exit_code: ClassVar[int] = EXIT_FAILED

    def __init__(self, detail: str = "", **fields: Any) -> None:
        self.fields: dict[str, Any] = {"detail": detail, **fields}
        super().__init__(self.message)

    @property
    def message(self) -> str:
        template = (type(self).__doc__ or "{detail}").strip().splitlines()[0]
        try:
            return template.format(**self.fields)
        except (KeyError, IndexError):
            return f"{template} {self.fields}"

    @property
    def kind(self) -> str:
        """A stable machine name for the error, used in --json output and events."""
        return type(self).__name__

    def __str__(self) -> str:
        return self.message


# --- usage and configuration (exit 2) ---------------------------------------------------


class UsageError(VaultError):
    """{detail}"""

    exit_code = EXIT_USAGE


class SpecialFileSource(UsageError):
    """{path} is a {kind}, not a file or directory: refused, as it would be stored as an empty file (a FIFO or device is read with --read-special; a socket never)"""  # noqa: E501


class SafetyCopyImpossible(UsageError):
    """restoring into {target} would overwrite or delete what it holds, and repository {repo} cannot be written to keep the safety copy that undoes it: nothing was changed; restore into an empty directory, or give --no-safety-copy"""  # noqa: E501


class ConfigError(VaultError):
    """{detail}"""

    exit_code = EXIT_USAGE


class ConfigInvalid(ConfigError):
    """{path}: {count} problem(s) in the configuration"""

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__(path=path, count=len(problems), problems=problems)
        self.problems = problems


class SecretUnavailable(ConfigError):
    """cannot read the {what}: {detail}"""


# --- operations (exit 1) ----------------------------------------------------------------


class OperationFailed(VaultError):
    """{detail}"""


class Interrupted(VaultError):
    """interrupted"""

    exit_code = EXIT_INTERRUPTED


class JournalError(VaultError):
    """journal {path}: {detail}"""


class StaleStreamVersion(JournalError):
    """stream {stream_id} is at version {actual}, not {expected}: another writer got there first"""


class UnknownEventType(JournalError):
    """unknown event type {type!r} (schema version {schema_version}) in the journal"""


class RepositoryError(VaultError):
    """repository {repo}: {detail}"""


class RepositoryNotFound(RepositoryError):
    """no vault repository at {repo} (create one with `vault init`)"""


class RepositoryExists(RepositoryError):
    """a repository already exists at {repo}"""


class WrongPassphrase(RepositoryError):
    """wrong passphrase or key file for repository {repo}"""


class UnsupportedFormat(RepositoryError):
    """repository {repo} uses format version {version}; this vault reads up to {supported}"""


class RepositoryLocked(RepositoryError):
    """repository {repo} is locked by {holder} since {since}; freed when it ends, or once its heartbeat is older than its lease (a holder that died)"""  # noqa: E501


class IntegrityError(RepositoryError):
    """integrity check failed for {what} in repository {repo}: {detail}"""


class SnapshotNotFound(RepositoryError):
    """no snapshot matches {ref!r} in repository {repo}"""


class RepositoryConfigDamaged(RepositoryError):
    """repository config at {repo} is damaged: {detail} (put back the file `config` from a copy of the repository: it holds no secret; docs/repair.md)"""  # noqa: E501


class SnapshotDamaged(RepositoryError):
    """snapshot {snapshot} in repository {repo} is damaged ({detail}) and cannot be read; `vault forget {snapshot}` removes it (docs/repair.md)"""  # noqa: E501


class PacksMissing(RepositoryError):
    """{count} pack(s) the index names are missing from repository {repo} ({packs}): prune refuses to go on; run `vault repair index` first (docs/repair.md)"""  # noqa: E501


class NotEnoughSpace(RepositoryError):
    """not enough space in {where}: need ~{need}, have {have}"""


class QuotaExceeded(RepositoryError):
    """backup would exceed the repository quota: {used} used + ~{new} new > {quota} quota"""


class QuotaReached(RepositoryError):
    """writing stopped at the quota ({quota}): {used} used + {written} written, kept; {todo}"""

    todo_text: ClassVar[str] = ("raise repository.quota, or forget and prune, then back up "
                                "again: what was written is reused")

    def __init__(self, **fields: Any) -> None:
        super().__init__(**{"todo": self.todo_text, **fields})


class HostilePath(VaultError):
    """refused to write {path!r}: {detail}"""


class StorageError(VaultError):
    """storage {where}: {detail}"""

    #: a transient error (timeout, connection reset) may be retried; a permanent one not
    transient: ClassVar[bool] = False


class TransientStorageError(StorageError):
    """storage {where}: {detail} (temporary; retried)"""

    transient = True


class ObjectNotFound(StorageError):
    """storage {where}: object {name} does not exist"""


# --- export files and foreign archives (`vault export` / `vault import`) ---
class ExportCorrupted(OperationFailed):
    """{path} is damaged: {detail}; nothing was imported"""


class ExportTruncated(ExportCorrupted):
    """{path} is truncated: {detail}; nothing was imported"""


class NotAnExport(UsageError):
    """{path} is not a vault export, SQLite database, tar or ZIP archive, mongodump archive or pg_dump custom-format file ({detail})"""  # noqa: E501


class UnsupportedExportVersion(UsageError):
    """{path} uses export format version {version}; this vault reads versions up to {supported}"""


class ExportPassphraseWrong(UsageError):
    """wrong passphrase for the encrypted export {path} (encrypted{whose})"""


class ExportPassphraseNeeded(UsageError):
    """{path} is encrypted{whose}: give it with --password-file, --password-command or VAULT_EXPORT_PASSWORD"""  # noqa: E501


class ExportTargetExists(UsageError):
    """{path} exists already; choose another output file or remove it first"""


class ExportRefused(UsageError):
    """cannot export snapshot {snapshot}: {detail}"""


class ArchiveUnreadable(OperationFailed):
    """cannot read {path} as a {kind} archive: {detail}"""


class NothingToImport(UsageError):
    """{path}: nothing to import ({detail})"""
