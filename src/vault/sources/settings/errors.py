"""What can go wrong with an application's settings, as one-line messages.

None of them quotes a settings value: a parser's own message is passed on only where it
names the problem and its position, never the text of the offending line."""

from __future__ import annotations

from vault.errors import OperationFailed, UsageError

__all__ = [
    "SealerMissing",
    "SettingsDocumentInvalid",
    "SettingsMalformed",
    "SettingsSourceInvalid",
    "SettingsTableError",
    "SettingsUnreadable",
]


class SettingsUnreadable(OperationFailed):
    """cannot read the settings in {path}: {detail}"""


class SettingsMalformed(OperationFailed):
    """{path}{position}: not valid {format}: {detail}"""

    def __init__(self, path: str, format: str, detail: str,
                 line: int | None = None, column: int | None = None) -> None:
        position = ""
        if line is not None:
            position = f", line {line}" + (f", column {column}" if column is not None else "")
        super().__init__(detail, path=path, format=format, position=position,
                         line=line, column=column)


class SettingsTableError(OperationFailed):
    """settings table {table!r} in {database}: {detail}"""


class SettingsDocumentInvalid(OperationFailed):
    """the stored settings of source {name} cannot be read: {detail}"""


class SealerMissing(UsageError):
    """settings source {name}: {detail}"""


class SettingsSourceInvalid(UsageError):
    """settings source {name}: {detail}"""
