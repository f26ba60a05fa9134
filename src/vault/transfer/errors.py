"""What can go wrong reading an export file or a foreign archive, one line each."""

from __future__ import annotations

from vault.errors import OperationFailed, UsageError


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
