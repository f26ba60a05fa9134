"""Settings files as data: parse and render JSON, TOML, YAML and .env (pure functions).

A parse error becomes `SettingsMalformed` naming the file and, where the parser tells it,
the line and column; the parser's description of the problem is kept, the text of the
line never is (it may be a password). Comments survive a re-import only in .env files
(which are edited line by line); JSON, TOML and YAML files are written anew, in the live
file's key order.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import PurePath
from typing import Any, Literal

from vault.sources.settings.env import EnvSyntaxError, parse_env, render_env
from vault.sources.settings.errors import SettingsMalformed

__all__ = ["FORMATS", "Format", "guess_format", "parse_settings", "render_settings"]

Format = Literal["json", "toml", "yaml", "env"]
FORMATS: tuple[Format, ...] = ("json", "toml", "yaml", "env")
_SUFFIXES: dict[str, Format] = {
    ".json": "json", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".env": "env",
}
_TOML_POSITION = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$")


def guess_format(path: str) -> Format | None:
    """The format a file's name says: *.json, *.toml, *.yaml/*.yml, .env, .env.* or *.env."""
    name = PurePath(path).name.lower()
    if name == ".env" or name.startswith(".env."):
        return "env"
    return _SUFFIXES.get(PurePath(name).suffix)


def parse_settings(data: bytes, format: Format, path: str) -> Any:
    text = _text(data, format, path)
    if format == "json":
        return _parse_json(text, path)
    if format == "toml":
        return _parse_toml(text, path)
    if format == "yaml":
        return _parse_yaml(text, path)
    try:
        return parse_env(text)
    except EnvSyntaxError as exc:
        raise SettingsMalformed(path, "env", str(exc), line=exc.line) from None


def render_settings(settings: Any, format: Format, live: bytes | None = None) -> bytes:
    """The file's new bytes. `live` is the current file, whose layout is kept where the
    format allows (the .env lines, the JSON indentation)."""
    live_text = live.decode("utf-8", "replace") if live is not None else None
    if format == "json":
        return (json.dumps(settings, indent=_json_indent(live_text), ensure_ascii=False)
                + "\n").encode("utf-8")
    if format == "toml":
        import tomli_w  # only when a TOML file is written

        return tomli_w.dumps(settings).encode("utf-8")
    if format == "yaml":
        import yaml

        text = yaml.safe_dump(settings, sort_keys=False, allow_unicode=True,
                              default_flow_style=False)
        return text.encode("utf-8")
    return render_env(settings, live_text).encode("utf-8")


def _text(data: bytes, format: str, path: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SettingsMalformed(path, format, "not UTF-8 text", line=line) from None
    return text.removeprefix("\ufeff")  # a byte-order mark some editors add


def _parse_json(text: str, path: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsMalformed(path, "json", exc.msg, line=exc.lineno,
                                column=exc.colno) from None


def _parse_toml(text: str, path: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.match(message)
        if position is None:
            raise SettingsMalformed(path, "toml", message) from None
        raise SettingsMalformed(path, "toml", position.group(1), line=int(position.group(2)),
                                column=int(position.group(3))) from None


def _parse_yaml(text: str, path: str) -> Any:
    import yaml  # only when a YAML file is read

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise SettingsMalformed(path, "yaml", problem) from None
        raise SettingsMalformed(path, "yaml", problem, line=mark.line + 1,
                                column=mark.column + 1) from None
    except yaml.YAMLError as exc:
        raise SettingsMalformed(path, "yaml", type(exc).__name__) from None


def _json_indent(live_text: str | None) -> int | str:
    if live_text:
        found = re.match(r"\s*[\[{]\r?\n([ \t]+)\S", live_text)
        if found:
            return found.group(1)
    return 2
