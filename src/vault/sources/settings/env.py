""".env files: KEY=VALUE lines, read and written with their comments kept.

Understood: blank lines and `# comments`, an optional `export ` prefix, unquoted values
(trimmed; ` # ...` after them is a comment), 'single-quoted' values (literal), and
"double-quoted" values that may span lines and know the escapes \\ \" \n \r \t. Values are
strings. Writing back edits the live file line by line, so its comments, order, `export`
prefixes and quoting survive everywhere a value did not change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EnvLine", "EnvSyntaxError", "parse_env", "parse_env_lines", "render_env"]

_ASSIGNMENT = re.compile(r"[ \t]*(export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*")
_BARE_VALUE = re.compile(r"[A-Za-z0-9_./:@%+,=-]+")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}
_TRAILER = re.compile(r"[ \t]*(#.*)?")


class EnvSyntaxError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class EnvLine:
    """One logical line: its text as written (several physical lines for a multi-line
    value), and the key and value it sets, if it is an assignment."""

    text: str
    key: str | None = None
    value: str | None = None


def parse_env(text: str) -> dict[str, str]:
    """The settings a .env text sets; a key set twice keeps its last value (as a shell)."""
    return {line.key: line.value for line in parse_env_lines(text)
            if line.key is not None and line.value is not None}


def parse_env_lines(text: str) -> list[EnvLine]:
    lines = text.splitlines(keepends=True)
    out: list[EnvLine] = []
    index = 0
    while index < len(lines):
        first = index
        line = lines[index]
        stripped = line.strip()
        index += 1
        if not stripped or stripped.startswith("#"):
            out.append(EnvLine(line))
            continue
        match = _ASSIGNMENT.match(line)
        if match is None:
            raise EnvSyntaxError("expected KEY=VALUE", first + 1)
        rest = line[match.end():]
        while rest.startswith('"') and not _closed_double(rest) and index < len(lines):
            rest += lines[index]  # a double-quoted value goes on to the next line
            index += 1
        value = _value(rest, first + 1)
        out.append(EnvLine("".join(lines[first:index]), match.group(2), value))
    return out


def _closed_double(rest: str) -> bool:
    escaped = False
    for char in rest[1:]:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return True
    return False


def _value(rest: str, line: int) -> str:
    rest = rest.rstrip("\r\n")
    if rest.startswith("'"):
        end = rest.find("'", 1)
        if end < 0:
            raise EnvSyntaxError("unterminated single-quoted value", line)
        return _after_quote(rest[1:end], rest[end + 1:], line)
    if rest.startswith('"'):
        return _double_quoted(rest, line)
    return re.split(r"[ \t]+#", rest, maxsplit=1)[0].strip()


def _double_quoted(rest: str, line: int) -> str:
    chars: list[str] = []
    position = 1
    while position < len(rest):
        char = rest[position]
        if char == '"':
            return _after_quote("".join(chars), rest[position + 1:], line)
        if char == "\\" and position + 1 < len(rest) and rest[position + 1] in _ESCAPES:
            chars.append(_ESCAPES[rest[position + 1]])
            position += 2
            continue
        chars.append(char)
        position += 1
    raise EnvSyntaxError("unterminated double-quoted value", line)


def _after_quote(value: str, trailer: str, line: int) -> str:
    trailer = trailer.rstrip("\r\n")
    if not _TRAILER.fullmatch(trailer):
        raise EnvSyntaxError("unexpected text after the closing quote", line)
    return value


def quote_env_value(value: str) -> str:
    if value == "" or _BARE_VALUE.fullmatch(value):
        return value
    if "'" not in value and "\n" not in value and "\r" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def render_env(settings: dict[str, str], live_text: str | None = None) -> str:
    """`settings` as .env text, edited into `live_text` when there is one."""
    written: set[str] = set()
    out: list[str] = []
    for line in parse_env_lines(live_text or ""):
        key = line.key
        if key is None:
            out.append(line.text)
        elif key in settings and key not in written:
            written.add(key)
            if line.value == settings[key]:
                out.append(line.text)
            else:
                prefix = "export " if line.text.lstrip().startswith("export") else ""
                out.append(f"{prefix}{key}={quote_env_value(settings[key])}\n")
        # a key no longer set, or set twice, is dropped
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    out.extend(f"{key}={quote_env_value(value)}\n" for key, value in settings.items()
               if key not in written)
    return "".join(out)
