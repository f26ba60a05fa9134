"""Pure helpers of the PostgreSQL per-row restore: reading a stored table item's COPY block,
the SQL that fingerprints, compares and applies rows by primary key, the order of tables
under foreign keys, and the errors. No I/O here: `postgresql_rows.py` does the talking.

A row's *key* is its primary key as text: the column's text form for a one-column key, a
JSON array of the columns' text forms for a composite key (`["1", "a"]`, jsonb's own
spelling). Its *fingerprint* is the md5 of the row's text form (`ROW(...)::text`) over the
columns the snapshot holds, computed by the server on both sides with the target's types,
so equal fingerprints mean equal values whatever the column types are.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import cast

from vault.errors import OperationFailed, UsageError
from vault.planning.restore_plan import Mode, OnConflict, RestorePlan, plan_items

COPY_END = b"\n\\.\n"
_COPY_TAIL = ") FROM stdin;"
# Old key -> new key of every row a new copy (--new-ids) inserted, per table, in the
# restore's transaction: where a child's INSERT looks up its parent's new key.
NEW_KEYS = "pg_temp.vault_new_keys"
CREATE_NEW_KEYS = ("CREATE TEMP TABLE vault_new_keys (tbl text, old text, new bigint, "
                   "PRIMARY KEY (tbl, old)) ON COMMIT DROP;")


#: why a table without a primary key is replaced whole (`RestorePlan.whole`)
NO_PRIMARY_KEY = "it has no primary key to name its rows by"


class PgTableMissing(UsageError):
    """table {table} does not exist in database {database!r}: a per-row restore (mode {mode}) needs it; restore it with --mode replace or into a new database"""  # noqa: E501


class PgCannotRename(UsageError):
    """cannot restore {count} differing row(s) of table {table} under a new key: its primary key is not one serial or identity column; use --on-conflict skip, overwrite or fail"""  # noqa: E501


class PgRowConflicts(OperationFailed):
    """refusing to restore: {count} row(s) differ between the snapshot and the target ({where}); nothing was written. Choose --on-conflict skip, overwrite or rename"""  # noqa: E501


class PgDuplicateKeys(OperationFailed):
    """the snapshot's rows of table {table} repeat a primary key of the target's table ({key}): restore it whole with --mode replace"""  # noqa: E501


class PgBadTableItem(OperationFailed):
    """the stored rows of table {table} are not a pg_dump COPY block: {detail}"""


# --- planning ------------------------------------------------------------------------------


class RowSides:
    """Both sides of a per-row plan: (table, key) -> fingerprint, and the snapshot rows'
    sizes (bytes of their text form)."""

    def __init__(self) -> None:
        self.snapshot: dict[Hashable, Hashable] = {}
        self.target: dict[Hashable, Hashable] = {}
        self.sizes: dict[Hashable, int] = {}

    def add_snapshot(self, table: str, key: str, fingerprint: str, size: int) -> bool:
        """False when the key is already there (a repeated key)."""
        if (table, key) in self.snapshot:
            return False
        self.snapshot[(table, key)] = fingerprint
        self.sizes[(table, key)] = size
        return True

    def add_target(self, table: str, key: str, fingerprint: str) -> None:
        self.target[(table, key)] = fingerprint

    def plan(self, mode: Mode, on_conflict: OnConflict | None) -> RestorePlan:
        return plan_items(self.snapshot, self.target, mode=mode, on_conflict=on_conflict,
                          group_of=lambda k: cast(tuple[str, str], k)[0],
                          key_text=lambda k: cast(tuple[str, str], k)[1],
                          size_of=lambda k: self.sizes.get(k, 0))


# --- SQL quoting --------------------------------------------------------------------------


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    return "'" + value.replace("'", "''") + "'"


def qualified(schema: str, name: str) -> str:
    return f"{ident(schema)}.{ident(name)}"


# --- the stored COPY block ----------------------------------------------------------------


def parse_identifiers(text: str) -> list[str]:
    """The names of a comma-separated identifier list as pg_dump writes it
    (`id, "Weird Name", "a""b"`): quoted where needed, bare (lower case) otherwise."""
    names: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        if i >= n:
            break
        if text[i] == '"':
            j, name = i + 1, []
            while True:
                quote = text.index('"', j)
                name.append(text[j:quote])
                if text.startswith('""', quote):
                    name.append('"')
                    j = quote + 2
                    continue
                i = quote + 1
                break
            names.append("".join(name))
        else:
            j = i
            while j < n and text[j] != ",":
                j += 1
            names.append(text[i:j].strip())
            i = j
    return names


def copy_columns(header: str) -> list[str]:
    """The column names of `COPY schema.table (a, "B c") FROM stdin;`. The table's own
    name may hold " (" inside quotes, so the list is the last balanced "(...)" before the
    tail: scanning back from the tail, skipping quoted identifiers."""
    if not (header.startswith("COPY ") and header.endswith(_COPY_TAIL)):
        raise ValueError(f"not a COPY header: {header[:80]!r}")
    body = header[: -len(_COPY_TAIL)]
    i, in_quotes = len(body) - 1, False
    while i >= 0:
        ch = body[i]
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == "(" and not in_quotes:
            return parse_identifiers(body[i + 1:])
        i -= 1
    raise ValueError(f"no column list in {header[:80]!r}")


class CopyBlock:
    """The COPY block of a stored `tables/<schema>/<table>.sql` item, read lazily: its
    header's column names once `columns()` has seen it, then `rows()`: the data lines up to
    and including the `\\.` line, and nothing after it (pg_dump appends `setval` calls for
    the table's sequences, which must not run against a scratch table)."""

    def __init__(self, parts: Iterable[bytes], table: str) -> None:
        self._parts = iter(parts)
        self._table = table
        self._rest = b""
        self._columns: list[str] | None = None

    def columns(self) -> list[str]:
        if self._columns is None:
            data = b""
            while (start := data.find(b"\nCOPY ")) < 0 or data.find(b"\n", start + 1) < 0:
                part = next(self._parts, None)
                if part is None:
                    raise PgBadTableItem(table=self._table, detail="no COPY line")
                data += part
            end = data.index(b"\n", start + 1)
            header = data[start + 1:end].decode()
            try:
                self._columns = copy_columns(header)
            except ValueError as error:
                raise PgBadTableItem(table=self._table, detail=str(error)) from None
            self._rest = data[end + 1:]
        return self._columns

    def rows(self) -> Iterator[bytes]:
        """The data lines and the closing `\\.` line, as bytes to feed to COPY."""
        self.columns()
        # A virtual newline in front makes an empty table's block ("\\.\n" alone) match
        # the end marker too; it is never yielded.
        data, virtual = b"\n" + self._rest, True
        while True:
            skip = 1 if virtual else 0
            end = data.find(COPY_END)
            if end >= 0:
                yield data[skip:end + len(COPY_END)]
                return
            cut = max(0, len(data) - (len(COPY_END) - 1))
            if cut > skip:
                yield data[skip:cut]
            if cut >= 1:
                virtual = False  # no match can start at the virtual newline any more
                data = data[cut:]
            part = next(self._parts, None)
            if part is None:
                raise PgBadTableItem(table=self._table, detail="the COPY block has no end")
            data += part


def data_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The data lines of a COPY block (`CopyBlock.rows()`; a row never holds a raw
    newline), each without its newline, and without the closing `\\.` line."""
    carry = b""
    for chunk in chunks:
        *whole, carry = (carry + chunk).split(b"\n")
        for line in whole:
            if line != b"\\.":
                yield line


def python_codec(meta: Mapping[str, object]) -> str:
    """The Python codec of a snapshot's stored rows (its database's encoding)."""
    encoding = str(meta.get("encoding", "UTF8")).upper()
    return {"UTF8": "utf-8", "SQL_ASCII": "latin-1", "LATIN1": "latin-1"}.get(encoding,
                                                                           "utf-8")


def unescape_copy_field(field: str) -> str | None:
    r"""A COPY text-format field's value (`\N` is NULL; `\t`, `\\`, `\123`, `\x41` ...)."""
    if field == "\\N":
        return None
    if "\\" not in field:
        return field
    out: list[str] = []
    i, n = 0, len(field)
    simple = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
    while i < n:
        ch = field[i]
        if ch != "\\" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = field[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt in "01234567":
            j = i + 1
            while j < min(n, i + 4) and field[j] in "01234567":
                j += 1
            out.append(chr(int(field[i + 1:j], 8)))
            i = j
        elif nxt == "x" and i + 2 < n and field[i + 2] in "0123456789abcdefABCDEF":
            j = i + 2
            while j < min(n, i + 4) and field[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(chr(int(field[i + 2:j], 16)))
            i = j
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


def escape_copy_field(value: str) -> str:
    """`value` as one COPY text-format field."""
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def key_text(values: list[str | None]) -> str:
    """A primary key as the plan names it; the same text `key_sql` makes on the server."""
    if len(values) == 1 and values[0] is not None:
        return values[0]
    return json.dumps(values, ensure_ascii=False)


def copy_line_keys(lines: Iterable[str], columns: list[str],
                   key: list[str]) -> Iterator[str]:
    """The key text of every data line of a COPY block (without its `\\.` line); the row's
    ordinal (`#1`, `#2`, ...) when the table has no primary key."""
    where = [columns.index(name) for name in key] if key else []
    for number, line in enumerate(lines, start=1):
        if not where:
            yield f"#{number}"
            continue
        fields = line.split("\t")
        yield key_text([unescape_copy_field(fields[i]) for i in where])


# --- SQL over one table -------------------------------------------------------------------


@dataclass(frozen=True)
class RowTable:
    """One table of a per-row restore, as the target defines it, and the columns the
    snapshot's COPY block holds (`columns`, in the block's order)."""

    schema: str
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    sequence: str | None  # the key's sequence, when the key is one serial/identity column
    always: tuple[str, ...] = ()  # GENERATED ALWAYS identity columns (never updated)
    number: int = 0  # tells its scratch tables apart
    types: tuple[str, ...] = ()  # the target's type of each of `columns` (format_type)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def sql_name(self) -> str:
        return qualified(self.schema, self.name)

    @property
    def snap(self) -> str:
        return f"pg_temp.vault_rows_{self.number}"

    @property
    def plan(self) -> str:
        return f"pg_temp.vault_plan_{self.number}"

    @property
    def selection(self) -> str:
        """The keys of the target's rows within an entity selection."""
        return f"pg_temp.vault_keys_{self.number}"

    def column_list(self, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(prefix + ident(c) for c in self.columns)

    def key_sql(self, alias: str) -> str:
        if len(self.key) == 1:
            return f"({alias}.{ident(self.key[0])})::text"
        parts = ", ".join(f"({alias}.{ident(c)})::text" for c in self.key)
        return f"jsonb_build_array({parts})::text"

    def row_sql(self, alias: str) -> str:
        return f"ROW({self.column_list(alias)})::text"

    def key_match(self, left: str, right: str) -> str:
        return " AND ".join(f"{left}.{ident(c)} = {right}.{ident(c)}" for c in self.key)

    # the statements, in the order `postgresql_rows` runs them

    def create_scratch(self) -> str:
        return (f"CREATE TEMP TABLE vault_rows_{self.number} ON COMMIT DROP AS "
                f"SELECT {self.column_list()} FROM {self.sql_name} WITH NO DATA;\n"
                f"CREATE TEMP TABLE vault_plan_{self.number} (action text, key text) "
                "ON COMMIT DROP;")

    def copy_in(self) -> str:
        return f"COPY {self.snap} ({self.column_list()}) FROM stdin;"

    def fingerprints(self, relation: str, selected: bool = False) -> str:
        """One line per row: its key as a JSON string, its md5, its text length; with
        `selected`, only the rows whose key is in `selection`."""
        where = f" WHERE {self.key_sql('t')} IN (SELECT key FROM {self.selection})" \
            if selected else ""
        return (f"SELECT to_json({self.key_sql('t')})::text || ' ' || md5({self.row_sql('t')})"
                f" || ' ' || octet_length({self.row_sql('t')}) FROM {relation} t{where};")

    # a table without a primary key is replaced whole: its rows are paired by content

    @property
    def whole(self) -> bool:
        return not self.key

    def whole_prints(self, relation: str) -> str:
        """One line per row: its md5 and its text length (no key names it)."""
        return (f"SELECT md5({self.row_sql('t')}) || ' ' || octet_length({self.row_sql('t')})"
                f" FROM {relation} t;")

    def delete_all(self) -> str:
        return f"DELETE FROM {self.sql_name};"

    def insert_all(self) -> str:
        return (f"INSERT INTO {self.sql_name} ({self.column_list()}) OVERRIDING SYSTEM VALUE "
                f"SELECT {self.column_list('s')} FROM {self.snap} s;")

    # an entity selection on the target side

    def create_selection(self) -> str:
        return (f"CREATE TEMP TABLE vault_keys_{self.number} (key text PRIMARY KEY) "
                "ON COMMIT DROP;")

    def copy_selection(self) -> str:
        return f"COPY {self.selection} (key) FROM stdin;"

    def select_children(self, column: str, parent: RowTable) -> str:
        """Add the target's rows whose `column` holds the key of a row of `parent` within
        the selection (compared as text, as rows are named)."""
        return (f"INSERT INTO {self.selection} (key) SELECT {self.key_sql('t')} "
                f"FROM {self.sql_name} t WHERE (t.{ident(column)})::text IN "
                f"(SELECT key FROM {parent.selection}) ON CONFLICT DO NOTHING;")

    def copy_plan(self) -> str:
        return f"COPY {self.plan} (action, key) FROM stdin;"

    def _planned(self, action: str, alias: str) -> str:
        return (f"JOIN {self.plan} p ON p.action = {literal(action)} "
                f"AND p.key = {self.key_sql(alias)}")

    def delete(self) -> str:
        return (f"DELETE FROM {self.sql_name} t USING {self.plan} p "
                f"WHERE p.action = 'delete' AND p.key = {self.key_sql('t')};")

    def update(self) -> str | None:
        settable = [c for c in self.columns if c not in self.key and c not in self.always]
        if not settable:
            return None
        names = ", ".join(ident(c) for c in settable)
        values = ", ".join(f"s.{ident(c)}" for c in settable)
        return (f"UPDATE {self.sql_name} t SET ({names}) = ROW({values}) "
                f"FROM {self.snap} s {self._planned('overwrite', 's')} "
                f"WHERE {self.key_match('t', 's')};")

    def insert(self) -> str:
        return (f"INSERT INTO {self.sql_name} ({self.column_list()}) OVERRIDING SYSTEM VALUE "
                f"SELECT {self.column_list('s')} FROM {self.snap} s "
                f"{self._planned('create', 's')};")

    def bump_sequence(self) -> str | None:
        """After rows came in with their own keys, the key's sequence must not hand those
        keys out again."""
        if self.sequence is None:
            return None
        column = ident(self.key[0])
        seq = literal(self.sequence)
        return (f"SELECT setval({seq}, m) FROM (SELECT max({column}) AS m FROM "
                f"{self.sql_name}) x WHERE m IS NOT NULL AND m > "
                f"(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
                f"FROM {self.sequence});")

    def insert_renamed(self) -> str:
        """Insert the snapshot's version of each row under a fresh key from the key's
        sequence; one line per row: the old key and the new, as JSON strings."""
        assert self.sequence is not None and len(self.key) == 1
        key = self.key[0]
        values = ", ".join("src.vault_new_key" if c == key else f"src.{ident(c)}"
                           for c in self.columns)
        return (f"WITH src AS MATERIALIZED (SELECT s.*, nextval({literal(self.sequence)}) AS "
                f"vault_new_key, {self.key_sql('s')} AS vault_old_key FROM {self.snap} s "
                f"{self._planned('rename', 's')}), "
                f"ins AS (INSERT INTO {self.sql_name} ({self.column_list()}) "
                f"OVERRIDING SYSTEM VALUE SELECT {values} FROM src) "
                "SELECT to_json(vault_old_key)::text || ' ' || to_json(vault_new_key::text)::text"
                " FROM src;")


    def insert_copied(self, references: Mapping[str, str],
                      renamed: Mapping[str, str] | None = None) -> str:
        """Insert every planned new row (action create) as a copy under a fresh key from
        the key's sequence, handed out in the order of the old keys. A column of
        `references` (column -> the table its values point into) takes the new key the
        row it points at was given (looked up in NEW_KEYS), or keeps its value when that
        row was not copied. The new keys go into NEW_KEYS too, for this table's children;
        one line per row: the old key and the new, as JSON strings. A column of `renamed`
        takes the value given there (a new copy's new name)."""
        assert self.sequence is not None and len(self.key) == 1
        key = self.key[0]
        types = dict(zip(self.columns, self.types, strict=True))

        def value(column: str) -> str:
            own = f"src.{ident(column)}"
            if column == key:
                return "src.vault_new_key"
            if renamed and column in renamed:
                return f"({literal(renamed[column])})::{types[column]}"
            if column not in references:
                return own
            new = (f"SELECT m.new FROM {NEW_KEYS} m WHERE m.tbl = {literal(references[column])}"
                   f" AND m.old = ({own})::text")
            return f"coalesce(({new})::{types[column]}, {own})"

        values = ", ".join(value(c) for c in self.columns)
        ordered = (f"SELECT s.*, {self.key_sql('s')} AS vault_old_key FROM {self.snap} s "
                   f"{self._planned('create', 's')} ORDER BY s.{ident(key)}")
        return (f"WITH src AS MATERIALIZED (SELECT o.*, nextval({literal(self.sequence)}) "
                f"AS vault_new_key FROM ({ordered}) o), "
                f"ins AS (INSERT INTO {self.sql_name} ({self.column_list()}) "
                f"OVERRIDING SYSTEM VALUE SELECT {values} FROM src), "
                f"kept AS (INSERT INTO {NEW_KEYS} (tbl, old, new) SELECT "
                f"{literal(self.qualified)}, vault_old_key, vault_new_key FROM src) "
                "SELECT to_json(vault_old_key)::text || ' ' || to_json(vault_new_key::text)::text"
                " FROM src ORDER BY vault_new_key;")


def parse_fingerprints(output: str) -> list[tuple[str, str, int]]:
    """(key, md5, size) from the lines `RowTable.fingerprints` selects."""
    found: list[tuple[str, str, int]] = []
    for line in output.splitlines():
        if not line:
            continue
        head, md5, size = line.rsplit(" ", 2)
        found.append((json.loads(head), md5, int(size)))
    return found


def parse_whole_prints(output: str) -> list[tuple[str, int]]:
    """(md5, size) from the lines `RowTable.whole_prints` selects."""
    return [(md5, int(size)) for md5, size in
            (line.split(" ") for line in output.splitlines() if line)]


def parse_pairs(output: str) -> dict[str, str]:
    """old key -> new key from the lines `RowTable.insert_renamed` selects."""
    pairs: dict[str, str] = {}
    for line in output.splitlines():
        if line:
            decoder = json.JSONDecoder()
            old, end = decoder.raw_decode(line)
            pairs[old] = json.loads(line[end:].strip())
    return pairs


def table_order(tables: list[str], references: Iterable[tuple[str, str]]) -> list[str]:
    """`tables` with every referenced table before the tables whose foreign keys point at
    it (`references`: (child, parent) pairs), else in the given order; cycles and
    self-references keep the given order."""
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in references:
        if child in parents and parent in parents and child != parent:
            parents[child].add(parent)
    ordered: list[str] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def place(table: str) -> None:
        if table in placed or table in visiting:
            return
        visiting.add(table)
        for parent in sorted(parents[table], key=tables.index):
            place(parent)
        visiting.discard(table)
        placed.add(table)
        ordered.append(table)

    for table in tables:
        place(table)
    return ordered
