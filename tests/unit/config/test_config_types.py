"""The value types vault.toml is written in: sizes, durations, cron, zones, names, URLs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from pydantic import ValidationError

from vault.config.model import Retention, Schedule, VaultConfig
from vault.config.types import CRON_PRESETS, parse_byte_size, parse_duration
from vault.sources.mongodb.config import MongoSourceConfig
from vault.sources.settings.config import SettingsSourceConfig

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (512, 512),
        ("512", 512),
        ("100K", 100 * KiB),
        ("100k", 100 * KiB),
        ("1.5G", int(1.5 * GiB)),
        ("2GiB", 2 * GiB),
        ("10MB", 10 * MiB),
        ("3 TB", 3 * TiB),
        ("0", 0),
    ],
)
def test_byte_size(text: object, expected: int) -> None:
    assert parse_byte_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "1.5.2G", "-1", -1, "10 parsecs", True, 1.5, None])
def test_bad_byte_size(text: object) -> None:
    with pytest.raises(ValueError):
        parse_byte_size(text)


def test_byte_size_in_a_model() -> None:
    config = VaultConfig.model_validate(
        {"repository": {"quota": "500G"}, "backup": {"exclude_larger_than": 4096}}
    )
    assert config.repository.quota == 500 * GiB
    assert config.backup.exclude_larger_than == 4096


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1y6m", timedelta(days=365 + 6 * 30)),
        ("36h", timedelta(hours=36)),
        ("90min", timedelta(minutes=90)),
        ("1d 12h", timedelta(days=1, hours=12)),
        ("45s", timedelta(seconds=45)),
        (3600, timedelta(hours=1)),
    ],
)
def test_duration(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "7 days", "d7", "1.5d", "-1d", -5, True])
def test_bad_duration(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_duration_in_a_model() -> None:
    assert Retention.model_validate({"keep_within": "2w"}).keep_within == timedelta(weeks=2)
    with pytest.raises(ValidationError, match="not a duration"):
        Retention.model_validate({"keep_within": "forever"})


def schedule(**fields: Any) -> Schedule:
    return Schedule.model_validate({"name": "s", "cron": "daily", **fields})


@pytest.mark.parametrize("preset", sorted(CRON_PRESETS))
def test_cron_presets_become_expressions(preset: str) -> None:
    assert schedule(cron=preset).cron == CRON_PRESETS[preset]
    assert schedule(cron=f"@{preset}").cron == CRON_PRESETS[preset]


def test_cron_expression_is_kept_normalised() -> None:
    assert schedule(cron=" 30  2 * * 1-5 ").cron == "30 2 * * 1-5"


@pytest.mark.parametrize("cron", ["61 * * * *", "* * * *", "0 0 * * * *", "yearly", ""])
def test_bad_cron(cron: str) -> None:
    with pytest.raises(ValidationError, match="not a valid cron expression"):
        schedule(cron=cron)


def test_timezone() -> None:
    assert schedule().timezone == "UTC"
    assert schedule(timezone="Europe/Berlin").timezone == "Europe/Berlin"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "Europe"])
def test_bad_timezone(zone: str) -> None:
    with pytest.raises(ValidationError, match="unknown timezone"):
        schedule(timezone=zone)


@pytest.mark.parametrize("name", ["Uploads", "-x", "a b", "", "ü"])
def test_bad_source_name(name: str) -> None:
    with pytest.raises(ValidationError, match="not a valid name"):
        VaultConfig.model_validate({"sources": [{"type": "sqlite", "name": name, "path": "/a"}]})


def test_negative_retention_count() -> None:
    with pytest.raises(ValidationError):
        Retention.model_validate({"keep_last": -1})


@pytest.mark.parametrize(
    ("section", "url"),
    [
        ("queue", "postgres://db/queue"),
        ("queue", "sqlite://relative.db"),
        ("queue", "redis://:secret@127.0.0.1/0"),
        ("repository", "sftp://user:secret@host/srv/repo"),
        ("repository", "file://relative"),
    ],
)
def test_bad_urls(section: str, url: str) -> None:
    with pytest.raises(ValidationError) as raised:
        VaultConfig.model_validate({section: {"url": url}})
    assert "secret" not in raised.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    "url", ["/srv/repo", "file:///srv/repo", "sftp://backup@host/srv/repo", "s3://bucket/p"]
)
def test_repository_urls(url: str) -> None:
    assert VaultConfig.model_validate({"repository": {"url": url}}).repository.url == url


def test_webhook_needs_http() -> None:
    with pytest.raises(ValidationError, match="http:// or https://"):
        VaultConfig.model_validate(
            {"notifications": [{"type": "webhook", "name": "w", "url": "ftp://h/x"}]}
        )


def test_email_needs_recipients_and_addresses() -> None:
    base = {"type": "email", "name": "m", "smtp_host": "smtp", "sender": "v@example.com"}
    with pytest.raises(ValidationError):
        VaultConfig.model_validate({"notifications": [{**base, "recipients": []}]})
    with pytest.raises(ValidationError, match="not an email address"):
        VaultConfig.model_validate({"notifications": [{**base, "recipients": ["ops"]}]})


def mongo(entities: list[dict[str, str]], **more: Any) -> MongoSourceConfig:
    return MongoSourceConfig.model_validate(
        {"type": "mongodb", "name": "m", "url": "mongodb://h/", "entities": entities, **more}
    )


PROJECT = {"name": "project", "collection": "projects"}
SESSION = {"name": "session", "collection": "sessions", "parent": "project", "key": "project_id"}


def test_entities_form_a_tree_of_parents() -> None:
    source = mongo([PROJECT, SESSION])
    assert [(e.name, e.parent, e.key) for e in source.entities] == [
        ("project", None, None), ("session", "project", "project_id")]


@pytest.mark.parametrize(
    ("entities", "loc", "message"),
    [
        ([PROJECT, {**SESSION, "parent": "projekt"}], ("entities", 1, "parent"),
         "no entity is named 'projekt'"),
        ([PROJECT, {**SESSION, "key": None}], ("entities", 1, "key"), "go together"),
        ([PROJECT, PROJECT], ("entities", 0, "name"), "declared twice"),
        ([{**PROJECT, "parent": "session", "key": "s"}, SESSION], ("entities", 0, "parent"),
         "cycle"),
    ],
)
def test_entities_that_do_not_form_a_tree_are_refused(
    entities: list[dict[str, str]], loc: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as raised:
        mongo(entities)
    assert raised.value.errors()[0]["loc"] == loc


def test_mongo_queries_are_extended_json_tables_or_text() -> None:
    oid = "65a000000000000000000001"
    source = mongo([], queries={"messages": {"owner": {"$oid": oid}},
                                "chat.sessions": '{"open": true}'})
    assert source.queries == {"messages": {"owner": ObjectId(oid)},
                              "chat.sessions": {"open": True}}
    with pytest.raises(ValidationError, match="extended\\) JSON"):
        mongo([], queries={"messages": "{not json"})


def test_mongo_date_range_needs_a_field_and_an_order() -> None:
    source = mongo([], date_field="at", since="2024-01-01T00:00:00", until="2025-01-01T00:00:00Z")
    assert source.since is not None and source.until is not None
    with pytest.raises(ValidationError, match="needed"):
        mongo([], since="2024-01-01T00:00:00Z")
    with pytest.raises(ValidationError, match="later than since"):
        mongo([], date_field="at", since="2025-01-01T00:00:00Z", until="2024-01-01T00:00:00Z")


def test_files_source_needs_paths() -> None:
    with pytest.raises(ValidationError):
        VaultConfig.model_validate({"sources": [{"type": "files", "name": "f", "paths": []}]})


def test_settings_source_redacts_by_default() -> None:
    config = VaultConfig.model_validate(
        {"sources": [{"type": "settings", "name": "s", "path": "/srv/app/.env"}]}
    )
    source = config.sources[0]
    assert isinstance(source, SettingsSourceConfig)
    assert source.secrets == "redact"
    assert {"*password*", "*secret*", "*token*", "*_key"} <= set(source.secret_keys)


def settings_source(**keys: Any) -> SettingsSourceConfig:
    config = VaultConfig.model_validate({"sources": [{"type": "settings", "name": "s", **keys}]})
    source = config.sources[0]
    assert isinstance(source, SettingsSourceConfig)
    return source


def test_settings_source_reads_a_sqlite_table() -> None:
    source = settings_source(database="/srv/app/app.db", table="config", key_column="k",
                             value_column="v", secrets="encrypt", secret_keys=["*pin*"])
    assert (source.path, str(source.database), source.table) == (None, "/srv/app/app.db",
                                                                 "config")
    assert (source.key_column, source.value_column) == ("k", "v")
    assert (source.secrets, source.secret_keys) == ("encrypt", ["*pin*"])


@pytest.mark.parametrize("keys", [
    {},
    {"path": "/srv/app/.env", "database": "/srv/app/app.db"},
    {"database": "/srv/app/app.db", "format": "json"},
    {"path": "/srv/app/.env", "secrets": "plain"},
    {"path": "/srv/app/settings.ini", "format": "ini"},
    {"path": "relative/.env"},
    {"database": "/srv/app/app.db", "table": ""},
])  # fmt: skip
def test_settings_source_refuses_a_bad_entry(keys: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings_source(**keys)
