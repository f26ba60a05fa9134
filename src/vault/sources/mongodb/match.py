"""Match stored documents against a MongoDB query, without a server.

A restore by query reads documents from a snapshot, not from a database, so the query is
evaluated here. It covers what selecting documents to restore needs: equality (an array
field matches when any element does), `$eq $ne $gt $gte $lt $lte $in $nin $exists`,
`$and $or $nor`, and dotted paths through sub-documents and arrays. Comparisons follow
MongoDB's type brackets: numbers with numbers (int32, int64, double, decimal alike),
strings with strings, dates with dates; values of different brackets never compare.
Anything else is refused by name rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import bson
from bson import Decimal128, ObjectId

__all__ = ["UnsupportedQuery", "matches", "value_key", "values_at"]


class UnsupportedQuery(ValueError):
    """A query uses an operator this matcher does not evaluate."""



def matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """True when `document` satisfies `query` (a MongoDB filter document)."""
    for key, condition in query.items():
        if key in ("$and", "$or", "$nor"):
            results = [matches(document, part) for part in _clauses(key, condition)]
            held = all(results) if key == "$and" else any(results)
            if held != (key != "$nor"):
                return False
        elif key.startswith("$"):
            raise UnsupportedQuery(f"the query operator {key} is not supported in a restore")
        elif not _field_matches(values_at(document, key.split(".")), condition):
            return False
    return True


def _clauses(operator: str, condition: Any) -> Sequence[Mapping[str, Any]]:
    if not isinstance(condition, list) or not all(isinstance(c, Mapping) for c in condition):
        raise UnsupportedQuery(f"{operator} needs a list of query documents")
    return condition


def values_at(value: Any, path: list[str]) -> list[Any]:
    """Every value `path` reaches (several through arrays); [] when it reaches none."""
    if not path:
        return [value]
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        return values_at(value[head], rest) if head in value else []
    if isinstance(value, list):
        found = []
        if head.isdigit() and int(head) < len(value):
            found += values_at(value[int(head)], rest)
        for element in value:
            if isinstance(element, Mapping):
                found += values_at(element, path)
        return found
    return []


def _is_operator_document(condition: Any) -> bool:
    return isinstance(condition, Mapping) and bool(condition) and all(
        str(key).startswith("$") for key in condition
    )


def _field_matches(values: list[Any], condition: Any) -> bool:
    if not _is_operator_document(condition):
        return _equals_any(values, condition)
    return all(_operator_matches(values, op, arg) for op, arg in condition.items())


def _operator_matches(values: list[Any], operator: str, argument: Any) -> bool:
    if operator == "$eq":
        return _equals_any(values, argument)
    if operator == "$ne":
        return not _equals_any(values, argument)
    if operator in ("$in", "$nin"):
        if not isinstance(argument, list):
            raise UnsupportedQuery(f"{operator} needs a list")
        found = any(_equals_any(values, item) for item in argument)
        return found if operator == "$in" else not found
    if operator == "$exists":
        return bool(values) == bool(argument)
    compare = _COMPARISONS.get(operator)
    if compare is None:
        raise UnsupportedQuery(f"the query operator {operator} is not supported in a restore")
    return any(_compares(value, argument, compare) for value in _flattened(values))


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _flattened(values: list[Any]) -> list[Any]:
    # A comparison on an array field holds when it holds for one of its elements.
    out: list[Any] = []
    for value in values:
        out += value if isinstance(value, list) else [value]
    return out


def _equals_any(values: list[Any], wanted: Any) -> bool:
    if wanted is None and not values:
        return True  # {"f": null} matches a missing field, as in MongoDB
    return any(_equal(value, wanted) for value in _flattened(values)) or any(
        isinstance(value, list) and _equal(value, wanted) for value in values
    )


def _bracket(value: Any) -> tuple[str, Any]:
    """(type bracket, comparable value)."""
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int | float):
        return "number", value
    if isinstance(value, Decimal128):
        return "number", value.to_decimal()
    if isinstance(value, datetime):
        return "date", value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        return "string", value
    return type(value).__name__, value


def _equal(left: Any, right: Any) -> bool:
    (left_kind, a), (right_kind, b) = _bracket(left), _bracket(right)
    if left_kind != right_kind:
        return False
    if left_kind == "number" and (isinstance(a, Decimal) or isinstance(b, Decimal)):
        return Decimal(str(a)) == Decimal(str(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _compares(left: Any, right: Any, compare: Callable[[Any, Any], bool]) -> bool:
    (left_kind, a), (right_kind, b) = _bracket(left), _bracket(right)
    if left_kind != right_kind:
        return False
    if left_kind == "number" and (isinstance(a, Decimal) or isinstance(b, Decimal)):
        a, b = Decimal(str(a)), Decimal(str(b))
    try:
        return compare(a, b)
    except TypeError:
        return False  # values of one bracket that Python cannot order (two documents)


def value_key(value: Any) -> tuple[str, Any]:
    """A hashable key under which equal ids meet (an int32 1 and an int64 1 are one id), for
    looking up parents' ids among children's keys without comparing every pair."""
    kind, comparable = _bracket(value)
    if kind == "number":
        return kind, Decimal(str(comparable))
    if kind in ("bool", "string", "date") or isinstance(value, ObjectId):
        return kind, comparable
    return kind, bson.encode({"": value})
