"""The pure parts of the PostgreSQL per-row restore: COPY blocks, keys, table order."""

from __future__ import annotations

import pytest

from vault.sources.postgresql.rows_plan import (
    CopyBlock,
    PgBadTableItem,
    copy_columns,
    copy_line_keys,
    escape_copy_field,
    key_text,
    parse_identifiers,
    table_order,
    unescape_copy_field,
)

DUMP = (b'--\n-- PostgreSQL database dump\n--\nSET client_encoding = \'UTF8\';\n\n'
        b'COPY public."odd (x) FROM stdin;" (id, "Weird ""Name""", b) FROM stdin;\n'
        b'1\ta\\tb\t\\N\n2\tc\td\n\\.\n\n\nSELECT pg_catalog.setval(\'s\', 2, true);\n')


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 1000])
def test_a_copy_block_is_cut_out_whatever_the_part_sizes(size: int) -> None:
    block = CopyBlock([DUMP[i:i + size] for i in range(0, len(DUMP), size)], "t")
    assert block.columns() == ["id", 'Weird "Name"', "b"]
    assert b"".join(block.rows()) == b"1\ta\\tb\t\\N\n2\tc\td\n\\.\n"  # no setval after it


@pytest.mark.parametrize("size", [1, 2, 5, 100])
def test_an_empty_tables_block_is_its_end_line(size: int) -> None:
    dump = b"--\nCOPY s.t (a) FROM stdin;\n\\.\n\n--\n"
    block = CopyBlock([dump[i:i + size] for i in range(0, len(dump), size)], "s.t")
    assert b"".join(block.rows()) == b"\\.\n"


def test_a_cut_short_or_foreign_item_is_refused() -> None:
    with pytest.raises(PgBadTableItem, match="no COPY line"):
        CopyBlock([b"--\nSELECT 1;\n"], "s.t").columns()
    with pytest.raises(PgBadTableItem, match="has no end"):
        b"".join(CopyBlock([b"--\nCOPY s.t (a) FROM stdin;\n1\n2\n"], "s.t").rows())


def test_identifiers_and_fields_round_trip() -> None:
    assert parse_identifiers('a, "B c", "x""y", d') == ["a", "B c", 'x"y', "d"]
    assert copy_columns('COPY "a(b" ("(", c) FROM stdin;') == ["(", "c"]
    for value in ["plain", "tab\there", "new\nline", "back\\slash", "cr\r", ""]:
        assert unescape_copy_field(escape_copy_field(value)) == value
    assert unescape_copy_field("\\N") is None
    assert unescape_copy_field("\\101\\x42\\\\") == "AB\\"


def test_keys_match_the_servers_spelling() -> None:
    assert key_text(["5"]) == "5"
    assert key_text(["2", 'south "q"']) == '["2", "south \\"q\\""]'  # jsonb's own text form
    lines = ["1\tx\tnorth", "2\ty\t\\N"]
    assert list(copy_line_keys(lines, ["id", "v", "p"], ["id", "p"])) == [
        '["1", "north"]', '["2", null]']
    assert list(copy_line_keys(lines, ["id", "v", "p"], [])) == ["#1", "#2"]


def test_parents_come_before_the_tables_that_reference_them() -> None:
    assert table_order(["a", "b", "c"], [("a", "c"), ("c", "b")]) == ["b", "c", "a"]
    assert table_order(["a", "b"], [("a", "a"), ("a", "zz")]) == ["a", "b"]
    assert table_order(["a", "b"], [("a", "b"), ("b", "a")]) in (["b", "a"], ["a", "b"])
