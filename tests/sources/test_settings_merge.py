"""The pure parts of the settings source: the merge of a re-import, secret matching, and
the type-exact JSON encoding."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest

from vault.sources.settings.codec import REDACTED, Sealed, canonical_bytes, decode, encode
from vault.sources.settings.merge import ABSENT, merge_settings, same_value
from vault.sources.settings.secrets import DEFAULT_SECRET_KEYS, SecretMatcher, protect, unseal

# --- merge --------------------------------------------------------------------------------


def test_stored_values_win_and_the_report_names_what_changed() -> None:
    stored = {"host": "db", "port": 5432, "debug": False, "new": "n"}
    live = {"port": 5433, "host": "db", "debug": 0, "gone": 1}

    result = merge_settings(stored, live)

    assert same_value(result.settings, {"port": 5432, "host": "db", "debug": False, "new": "n"})
    assert list(result.settings) == ["port", "host", "debug", "new"]  # the live order first
    report = result.report
    assert (report.changed, report.added, report.removed) == (["port", "debug"], ["new"],
                                                              ["gone"])


def test_a_redacted_value_never_overwrites_a_live_one() -> None:
    stored = {"password": REDACTED, "smtp": {"host": "mail", "token": REDACTED}}
    live = {"password": "live-pw", "smtp": {"host": "old", "token": {"a": 1}}}

    result = merge_settings(stored, live)

    assert result.settings == {"password": "live-pw", "smtp": {"host": "mail", "token": {"a": 1}}}
    assert result.report.kept_secrets == ["password", "smtp.token"]
    assert result.report.missing_secrets == []
    assert result.report.changed == ["smtp.host"]


def test_a_redacted_value_without_a_live_one_is_left_out_and_reported() -> None:
    stored = {"password": REDACTED, "name": "x", "servers": [{"token": REDACTED, "n": 1}]}

    result = merge_settings(stored, {"name": "x"})

    assert result.settings == {"name": "x", "servers": [{"n": 1}]}
    assert result.report.missing_secrets == ["password", "servers.0.token"]
    assert result.report.added == ["servers"]
    assert result.report.removed == []


def test_with_no_live_settings_everything_is_added() -> None:
    result = merge_settings({"b": 1, "a": {"x": REDACTED}}, ABSENT)

    assert result.settings == {"b": 1, "a": {}}
    assert result.report.added == ["b", "a"]
    assert result.report.missing_secrets == ["a.x"]


def test_identical_settings_are_unchanged() -> None:
    settings = {"a": [1, 2.0, {"b": None}], "c": datetime(2024, 1, 2, tzinfo=UTC)}
    result = merge_settings(settings, json.loads(json.dumps({"a": [1, 2.0, {"b": None}]}))
                            | {"c": datetime(2024, 1, 2, tzinfo=UTC)})
    assert result.report.unchanged


def test_lists_are_merged_by_position() -> None:
    result = merge_settings({"l": [1, 2]}, {"l": [1, 3, 4]})
    assert result.settings == {"l": [1, 2]}
    assert (result.report.changed, result.report.removed) == (["l.1"], ["l.2"])


@pytest.mark.parametrize(("a", "b"), [
    (1, 1.0), (1, True), (0, False), ("1", 1), (None, 0), ([1], (1,)), (0.0, -0.0),
    (datetime(2024, 1, 1, 12, tzinfo=UTC),
     datetime(2024, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))),
    (datetime(2024, 1, 1), date(2024, 1, 1)), ({"a": 1}, {"a": 1.0}),
])  # fmt: skip
def test_same_value_tells_types_apart(a: Any, b: Any) -> None:
    assert not same_value(a, b)
    assert same_value(a, a) and same_value(b, b)


def test_same_value_holds_for_nan() -> None:
    assert same_value({"x": [math.nan]}, {"x": [float("nan")]})


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "path"), [
    ("password", "password"), ("DB_PASSWORD", "DB_PASSWORD"), ("Secret", "a.Secret"),
    ("api_token", "api_token"), ("signing_key", "x.signing_key"), ("SMTP_PASS", "SMTP_PASS"),
])  # fmt: skip
def test_default_patterns_find_secrets(key: str, path: str) -> None:
    assert SecretMatcher(DEFAULT_SECRET_KEYS).is_secret(key, path)


@pytest.mark.parametrize("key", ["host", "port", "keyboard", "name", "timeout"])
def test_default_patterns_leave_plain_keys(key: str) -> None:
    assert not SecretMatcher(DEFAULT_SECRET_KEYS).is_secret(key, f"app.{key}")


def test_a_pattern_may_name_a_dotted_path() -> None:
    matcher = SecretMatcher(["smtp.user"])
    assert matcher.is_secret("user", "smtp.user")
    assert not matcher.is_secret("user", "db.user")


def test_protect_redacts_whole_values_and_lists_their_paths() -> None:
    settings = {"db": {"password": "p", "host": "h"}, "tokens": ["a", "b"], "n": [{"key": 1}]}

    protected = protect(settings, SecretMatcher(["*password*", "*token*", "key"]), None)

    assert protected.settings == {"db": {"password": REDACTED, "host": "h"}, "tokens": REDACTED,
                                  "n": [{"key": REDACTED}]}
    assert protected.secrets == ["db.password", "tokens", "n.0.key"]
    assert settings["tokens"] == ["a", "b"]  # the input is not changed


def test_sealed_secrets_unseal_to_the_same_values_and_types() -> None:
    reverse = lambda data: data[::-1]  # noqa: E731 - a reversible stand-in for encryption
    settings = {"api_key": 12345, "secret": {"when": date(2024, 5, 6), "f": 1.0}}

    protected = protect(settings, SecretMatcher(["*_key", "secret"]), reverse)

    assert isinstance(protected.settings["api_key"], Sealed)
    assert b"12345" not in canonical_bytes(encode(protected.settings))
    assert same_value(unseal(decode(json.loads(canonical_bytes(encode(protected.settings)))),
                             reverse), settings)


# --- encoding ------------------------------------------------------------------------------

EXOTIC: dict[Any, Any] = {
    "int": 9007199254740993, "float": 1.0, "neg0": -0.0, "inf": math.inf, "ninf": -math.inf,
    "bool": True, "none": None, "text": "h\u00e9llo \"q\"\n",
    "aware": datetime(1979, 5, 27, 7, 32, tzinfo=timezone(timedelta(hours=-8))),
    "naive": datetime(1979, 5, 27, 7, 32, 0, 999999), "day": date(1979, 5, 27),
    "clock": time(7, 32), "bytes": b"\x00\xff", "set": {1, "a"},
    "nonstring_keys": {1: "one", False: "no", None: "null"}, "$vault": {"$vault": "redacted"},
    "list": [1, [2.5, {"x": None}]],
}  # fmt: skip


def test_every_value_type_round_trips_exactly() -> None:
    data = canonical_bytes(encode(EXOTIC))

    back = decode(json.loads(data))

    assert same_value(back, EXOTIC)
    assert back["$vault"] == {"$vault": "redacted"}  # a user's key, not a marker


def test_the_encoding_is_canonical() -> None:
    shuffled = dict(reversed(list(EXOTIC.items())))
    assert canonical_bytes(encode(shuffled)) == canonical_bytes(encode(EXOTIC))


def test_nan_round_trips() -> None:
    assert math.isnan(decode(json.loads(canonical_bytes(encode(math.nan)))))
