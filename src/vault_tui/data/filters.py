"""The filter bars of the history and journal screens: `key:value` tokens, plain words and
dates, parsed with one-line errors for what cannot be meant."""

from __future__ import annotations

from datetime import datetime, timedelta

from vault.errors import UsageError


def parse_filter_text(text: str, keys: tuple[str, ...]) -> tuple[dict[str, list[str]], list[str]]:
    """`key:value` tokens (for the given keys) and the free words of a filter bar's text.
    A `word:` naming no known key is refused rather than searched for: it is most likely a
    misspelt key, and silently matching nothing would hide that."""
    tokens: dict[str, list[str]] = {key: [] for key in keys}
    words: list[str] = []
    for token in text.split():
        key, colon, value = token.partition(":")
        if not colon or not key.isalpha():
            words.append(token)
            continue
        if key.lower() not in tokens:
            known = ", ".join(f"{k}:" for k in keys)
            raise UsageError(f"unknown filter {key}: (use {known} or plain words)")
        if not value:
            raise UsageError(f"{key}: needs a value")
        tokens[key.lower()].append(value)
    return tokens, words


def parse_moment(value: str, key: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date or date-time; without an offset it is local time (as the tables show
    it). A bare date ends at midnight when it closes a range (`until:` takes the day in)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{key}:{value}: expected a date such as 2026-11-20 or "
                         "2026-11-20T14:00") from exc
    if end_of_day and len(value) == 10:
        moment += timedelta(days=1, microseconds=-1)
    return moment if moment.tzinfo else moment.astimezone()


