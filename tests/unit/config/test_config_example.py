"""vault.toml.example and docs/config.md stay complete and valid as the models grow."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from vault.config.model import VaultConfig, check_config_file, load_config

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "vault.toml.example"
DOCS = ROOT / "docs" / "config.md"


def models(model: type[BaseModel] = VaultConfig) -> set[type[BaseModel]]:
    """Every model reachable from `model` through its fields (unions, lists, Annotated)."""
    found = {model}
    for field in model.model_fields.values():
        for inner in _classes(field.annotation):
            if issubclass(inner, BaseModel) and inner not in found:
                found |= models(inner)
    return found


def _classes(annotation: object) -> list[type]:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return [annotation]
    return [cls for arg in typing.get_args(annotation) for cls in _classes(arg)]


def every_key() -> list[tuple[str, str]]:
    keys = {(m.__name__, name) for m in models() for name in m.model_fields}
    return sorted(keys)


def test_the_walk_finds_the_nested_models() -> None:
    names = {m.__name__ for m in models()}
    assert {"SecretRef", "EntityLevel", "MongoSourceConfig", "WebhookNotification"} <= names


def test_example_loads_cleanly() -> None:
    config = load_config(EXAMPLE, env={})

    assert {s.type for s in config.sources} == {"files", "sqlite", "postgresql", "mongodb",
                                                "settings"}  # fmt: skip
    assert [s.name for s in config.schedules] == ["nightly", "hourly-chat", "check"]
    assert {n.type for n in config.notifications} == {"email", "webhook"}
    mongo = next(s for s in config.sources if s.type == "mongodb")
    assert [(e.collection, e.parent) for e in mongo.entities] == [
        ("projects", None), ("sessions", "project"), ("messages", "session")]


def test_example_has_no_problems() -> None:
    assert check_config_file(EXAMPLE) == []


def test_example_holds_no_plain_secret() -> None:
    for line in EXAMPLE.read_text().splitlines():
        if re.match(r"\s*#?\s*(password|token)\s*=", line):
            assert re.search(r"=\s*\{\s*(env|file|command)\s*=", line), line


def mentions(text: str, key: str) -> bool:
    """`key = ...` (possibly commented out or in an inline table) or a `[key]`,
    `[[key]]` or `[parent.key]` table header."""
    assignment = rf"(^|[\s{{,#`])\s*{key}\s*="
    header = rf"\[\[?([\w.]+\.)?{key}\]\]?"
    return bool(re.search(f"{assignment}|{header}", text, re.MULTILINE))


@pytest.mark.parametrize(("model", "key"), every_key())
def test_every_key_is_in_the_example(model: str, key: str) -> None:
    assert mentions(EXAMPLE.read_text(), key), f"{model}.{key} is missing from the example"


@pytest.mark.parametrize(("model", "key"), every_key())
def test_every_key_is_documented(model: str, key: str) -> None:
    text = DOCS.read_text()
    assert f"`{key}`" in text or mentions(text, key), f"{model}.{key} is not in docs/config.md"
