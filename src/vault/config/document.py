"""The document side of vault.toml: reading it, layering environment variables and flags
over it, checks that span sections, and problems reported as `file:line: key: message`.

pydantic knows *which* key is wrong (`loc`), tomllib knows nothing about lines once it has
parsed, so `key_lines` rescans the (already valid) TOML text and records the line where
every key, array element, table and array-of-tables entry is defined. A problem with a
missing key points at the table that should hold it; one with a value from the
environment or a flag names that variable or "command line" instead of a line.

This module knows nothing about vault's models: `vault.config.model` uses it, not the reverse.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from vault.errors import ConfigError

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SYNTAX_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)")
_SCALAR_END = re.compile(r"[,\]}\n#]")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration. `line` is None when the value did not come
    from the file (an environment variable or a command-line flag, named in `file`)."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return ": ".join(part for part in (where, self.key, self.message) if part)


def dotted_key(path: Sequence[str | int]) -> str:
    """`("sources", 1, "port")` -> `sources[1].port`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def syntax_problem(file: str, error: tomllib.TOMLDecodeError) -> Problem:
    message = str(error)
    found = _SYNTAX_POSITION.search(message)
    line = int(found.group(1)) if found else None
    return Problem(file, line, "", _SYNTAX_POSITION.sub("", message))


def problems_from_error(
    error: ValidationError,
    *,
    file: str,
    text: str,
    data: Mapping[str, Any],
    origins: Mapping[KeyPath, str] | None = None,
) -> list[Problem]:
    """One Problem per pydantic error. `data` is what was validated (to tell TOML keys
    from the union tags pydantic puts in `loc`); `origins` names where a key was set when
    it was not the file (`{("repository", "url"): "$VAULT_REPOSITORY"}`)."""
    lines = key_lines(text)
    problems: list[Problem] = []
    for detail in error.errors():
        path = toml_path(detail, data)
        origin = _origin(path, origins or {})
        key, message = dotted_key(path), _message(detail)
        if origin is not None:
            problems.append(Problem(origin, None, key, message))
        else:
            problems.append(Problem(file, _line_of(path, lines, text), key, message))
    # Flags and variables first, then in file order, as one reads the file top to bottom.
    return sorted(problems, key=lambda problem: (problem.line is not None, problem.line or 0))


def toml_path(detail: ErrorDetails, data: Mapping[str, Any]) -> KeyPath:
    """The key path in the TOML document for a pydantic error location."""
    path: list[str | int] = []
    node: Any = data
    for part in detail["loc"]:
        # A discriminated union adds the tag (`"postgresql"`) to the location; the
        # document has no such key.
        if isinstance(node, Mapping) and part not in node and node.get("type") == part:
            continue
        path.append(part)
        node = _child(node, part)
    if detail["type"] == "union_tag_invalid":
        path.append("type")
    return tuple(path)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, Mapping):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return None


def _message(detail: ErrorDetails) -> str:
    kind, ctx = detail["type"], detail.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing required key"
    if kind == "union_tag_not_found":
        return "missing required key 'type'"
    if kind == "union_tag_invalid" and "tag" in ctx:
        return f"unknown type {ctx['tag']!r}; expected one of {ctx['expected_tags']}"
    message = detail["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _origin(path: KeyPath, origins: Mapping[KeyPath, str]) -> str | None:
    for end in range(len(path), 0, -1):
        if path[:end] in origins:
            return origins[path[:end]]
    return None


def _line_of(path: KeyPath, lines: Mapping[KeyPath, int], text: str) -> int | None:
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1 if text else None


def key_lines(text: str) -> dict[KeyPath, int]:
    """The line (1-based) where each key path is first defined in a valid TOML document.
    Array-of-tables entries and array elements are indexed from 0, as pydantic does."""
    scanner = _Scanner(text)
    # On a surprise keep what was mapped: a problem then points at an enclosing table.
    with contextlib.suppress(_ScanError, IndexError):
        scanner.scan()
    return scanner.lines


class _ScanError(Exception):
    pass


class _Scanner:
    """Just enough of a TOML reader to know where things are. It runs only on text that
    tomllib has accepted, so it does not validate anything."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[KeyPath, int] = {}
        self.array_counts: dict[KeyPath, int] = {}
        self.newlines = [i for i, char in enumerate(text) if char == "\n"]

    def line(self) -> int:
        return bisect.bisect_left(self.newlines, self.pos) + 1

    def scan(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            if self.text[self.pos] == "[":
                table = self.header()
            else:
                self.key_value(table)

    def header(self) -> KeyPath:
        line, array = self.line(), self.text.startswith("[[", self.pos)
        self.pos += 2 if array else 1
        parts = self.key()
        self.pos += 2 if array else 1
        path: KeyPath = ()
        for i, part in enumerate(parts):
            path += (part,)
            self.lines.setdefault(path, line)
            if array and i == len(parts) - 1:
                index = self.array_counts.get(path, 0)
                self.array_counts[path] = index + 1
                path += (index,)
            elif path in self.array_counts:  # `[[a.b]]` nests in the latest `[[a]]`
                path += (self.array_counts[path] - 1,)
        self.lines.setdefault(path, line)
        return path

    def key_value(self, table: KeyPath) -> None:
        line, path = self.line(), table
        for part in self.key():
            path += (part,)
            self.lines.setdefault(path, line)
        self.skip_blank(newlines=False)
        self.expect("=")
        self.skip_blank(newlines=False)
        self.value(path)

    def key(self) -> list[str]:
        parts = []
        while True:
            self.skip_blank(newlines=False)
            char = self.text[self.pos]
            if char in "\"'":
                start = self.pos
                self.string()
                parts.append(tomllib.loads(f"k = {self.text[start : self.pos]}")["k"])
            else:
                bare = _BARE_KEY.match(self.text, self.pos)
                if bare is None:
                    raise _ScanError(self.pos)
                parts.append(bare.group())
                self.pos = bare.end()
            self.skip_blank(newlines=False)
            if self.text[self.pos] != ".":
                return parts
            self.pos += 1

    def value(self, path: KeyPath) -> None:
        char = self.text[self.pos]
        if char in "\"'":
            self.string()
        elif char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        else:
            end = _SCALAR_END.search(self.text, self.pos)
            self.pos = end.start() if end else len(self.text)

    def array(self, path: KeyPath) -> None:
        self.pos += 1
        index = 0
        while True:
            self.skip_blank(newlines=True)
            if self.text[self.pos] == "]":
                self.pos += 1
                return
            self.lines.setdefault((*path, index), self.line())
            self.value((*path, index))
            index += 1
            self.skip_blank(newlines=True)
            if self.text[self.pos] == ",":
                self.pos += 1

    def inline_table(self, path: KeyPath) -> None:
        self.pos += 1
        while True:
            self.skip_blank(newlines=True)
            if self.text[self.pos] == "}":
                self.pos += 1
                return
            self.key_value(path)
            self.skip_blank(newlines=True)
            if self.text[self.pos] == ",":
                self.pos += 1

    def string(self) -> None:
        quote = self.text[self.pos]
        delimiter = quote * 3 if self.text.startswith(quote * 3, self.pos) else quote
        self.pos += len(delimiter)
        while not self.text.startswith(delimiter, self.pos):
            if quote == '"' and self.text[self.pos] == "\\":
                self.pos += 1
            if self.pos >= len(self.text):
                raise _ScanError(self.pos)
            self.pos += 1
        self.pos += len(delimiter)
        # A multi-line string may end with one or two quotes of its own: `"""a""""`.
        while len(delimiter) == 3 and self.text.startswith(quote, self.pos):
            self.pos += 1

    def skip_blank(self, *, newlines: bool) -> None:
        blank = " \t\r\n" if newlines else " \t\r"
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            elif char in blank:
                self.pos += 1
            else:
                return

    def expect(self, char: str) -> None:
        if self.text[self.pos] != char:
            raise _ScanError(self.pos)
        self.pos += 1


# --- checks that span sections ------------------------------------------------------------


def reference_errors(data: Mapping[str, Any]) -> list[InitErrorDetails]:
    """Duplicate names, and schedules naming sources or notifications that do not exist.
    Works on raw (possibly invalid) input so these are reported with everything else."""
    errors: list[InitErrorDetails] = []
    sources = _unique_names(data, "sources", errors)
    _unique_names(data, "schedules", errors)
    _unique_names(data, "groups", errors)
    targets = _unique_names(data, "notifications", errors)
    wanted = (("sources", sources, "source"), ("notify", targets, "notification"))
    for index, schedule in enumerate(_items(data, "schedules")):
        for key, known, what in wanted:
            names = _get(schedule, key)
            for position, name in enumerate(names if isinstance(names, list) else []):
                if isinstance(name, str) and name not in known:
                    configured = ", ".join(sorted(known)) or "none"
                    message = f"no {what} named {name!r} (configured: {configured})"
                    errors.append(_error(("schedules", index, key, position), message))
    for index, group in enumerate(_items(data, "groups")):
        names = _get(group, "sources")
        for position, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in sources:
                configured = ", ".join(sorted(sources)) or "none"
                message = f"no source named {name!r} (configured: {configured})"
                errors.append(_error(("groups", index, "sources", position), message))
    return errors


def with_errors(error: ValidationError, extra: list[InitErrorDetails]) -> ValidationError:
    """pydantic's errors followed by `extra`, as one ValidationError."""
    return ValidationError.from_exception_data(
        error.title, [*map(_reraised, error.errors()), *extra]
    )


def _unique_names(
    data: Mapping[str, Any], section: str, errors: list[InitErrorDetails]
) -> set[str]:
    seen: set[str] = set()
    for index, item in enumerate(_items(data, section)):
        name = _get(item, "name")
        if not isinstance(name, str):
            continue
        if name in seen:
            message = f"duplicate name {name!r}: names in {section} must be unique"
            errors.append(_error((section, index, "name"), message))
        seen.add(name)
    return seen


def _items(data: Mapping[str, Any], section: str) -> list[Any]:
    items = data.get(section)
    return items if isinstance(items, list) else []


def _get(item: Any, key: str) -> Any:
    # Raw input is TOML tables, but a caller may pass models it has built.
    return item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)


def _error(loc: KeyPath, message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("reference", message), loc=loc, input=None)


def _reraised(detail: ErrorDetails) -> InitErrorDetails:
    # Keep a context only when it is plain data: a value_error's context holds the
    # exception object, and its message is already rendered anyway.
    ctx = detail.get("ctx") or {}
    plain = bool(ctx) and all(isinstance(value, str | int | float) for value in ctx.values())
    error = PydanticCustomError(detail["type"], detail["msg"], ctx if plain else None)
    return InitErrorDetails(type=error, loc=detail["loc"], input=detail.get("input"))


# --- reading and layering -----------------------------------------------------------------

ENV_KEYS: dict[str, tuple[str, ...]] = {
    "VAULT_REPOSITORY": ("repository", "url"),
    "VAULT_COMPRESSION_LEVEL": ("repository", "compression_level"),
    "VAULT_STATE_DIR": ("state_dir",),
    "VAULT_CACHE_DIR": ("cache_dir",),
    "VAULT_JOURNAL": ("journal", "path"),
    "VAULT_QUEUE_URL": ("queue", "url"),
}
FLAG_ORIGIN = "command line"
# In the environment and on the command line a relative path means what it means in any
# shell command: from the current directory. In the file it is an error (see config.py).
_PATH_KEYS = {("repository", "url"), ("state_dir",), ("cache_dir",), ("journal", "path")}
_PATH_KEYS |= {("backup", "exclude_file")}
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# restic's spelling of a remote repository ("s3:https://host/bucket/prefix",
# "sftp:user@host:/srv/repo"): never a local path, so never made one (a directory named
# "s3:https:" in the current directory would look like an off-site backup).
RESTIC_LOCATION = re.compile(r"(s3|sftp|rest|b2|azure|gs|swift|rclone):(?!//)", re.IGNORECASE)


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def parse_toml(file: str, text: str) -> dict[str, Any] | Problem:
    """The document, or the syntax problem that stops tomllib (it reports only the first)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return syntax_problem(file, error)


def layer_environment(
    data: dict[str, Any], env: Mapping[str, str], sections: Collection[str]
) -> dict[KeyPath, str]:
    """Write `VAULT_*` variables over `data`; return which variable set which key.
    `VAULT_<SECTION>__<KEY>` reaches any key of a table in `sections`; the named variables
    (VAULT_REPOSITORY, ...) are applied after, so they win over their generic spelling."""
    layered: list[tuple[str, tuple[str, ...]]] = []
    for name in sorted(env):
        section, sep, key = name.removeprefix("VAULT_").partition("__")
        if name.startswith("VAULT_") and sep and key and section.lower() in sections:
            layered.append((name, (section.lower(), key.lower())))
    layered += [(name, path) for name, path in ENV_KEYS.items() if name in env]
    origins: dict[KeyPath, str] = {}
    for name, path in layered:
        if env[name]:  # empty counts as unset, as for VAULT_PASSWORD
            set_key(data, path, env[name], origin=f"${name}")
            origins[path] = f"${name}"
    return origins


def layer_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any], origins: dict[KeyPath, str]
) -> None:
    """Write dotted-key flags (`{"repository.url": ...}`) over `data`; None means not given."""
    for dotted, value in overrides.items():
        if value is not None:
            path = tuple(dotted.split("."))
            set_key(data, path, value, origin=FLAG_ORIGIN)
            origins[path] = FLAG_ORIGIN


def set_key(data: dict[str, Any], path: tuple[str, ...], value: Any, *, origin: str) -> None:
    local = isinstance(value, str | os.PathLike) and not (
        _URL.match(os.fspath(value)) or RESTIC_LOCATION.match(os.fspath(value)))
    if path in _PATH_KEYS and local:
        value = os.path.abspath(os.path.expanduser(value))
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: cannot set {dotted_key(path)}: {part} is not a table")
        node = child
    node[path[-1]] = value
