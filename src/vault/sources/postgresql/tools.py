"""Pure helpers of the PostgreSQL source: connection strings, URLs, versions, item names,
and the byte filters applied to pg_dump's output. No I/O here: `postgresql.py` and
`pg_client.py` do the talking.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from vault.config.secrets import Secret
from vault.errors import OperationFailed, UsageError

DEFAULT_PORT = 5432
APPLICATION_NAME = "vault"


# --- errors (messages never hold a password) ----------------------------------------------


class PostgresError(OperationFailed):
    """PostgreSQL: {detail}"""


class PgClientNotFound(PostgresError):
    """{program} not found{where}: install the postgresql-client package (apt-get install postgresql-client)"""  # noqa: E501


class PgClientTooOld(PostgresError):
    """{program} {client} is older than the PostgreSQL {server} server at {at}: install {package} (apt-get install {package})"""  # noqa: E501


class PgUnreachable(PostgresError):
    """cannot connect to PostgreSQL at {at}: {reason}"""


class PgAuthFailed(PostgresError):
    """PostgreSQL at {at} refused user {user}: {reason}"""


class PgDatabaseMissing(PostgresError):
    """PostgreSQL at {at} has no database {database!r}"""


class PgCommandFailed(PostgresError):
    """{program} failed for {what} at {at}: {reason}"""


class PgTargetNotEmpty(PostgresError):
    """database {database!r} at {at} is not empty: restore into a new database or use mode replace"""  # noqa: E501


class PgUnknownTable(UsageError):
    """no table {name!r} in this PostgreSQL snapshot (it has: {known})"""


class PgBadUrl(UsageError):
    """not a PostgreSQL URL ({detail}): use postgresql://user@host:5432/dbname"""


# --- where to connect ----------------------------------------------------------------------


@dataclass(frozen=True)
class PgTarget:
    """A database on a server, and who connects. `password` is a `Secret` (masked repr);
    it goes to libpq through PGPASSWORD, never into a conninfo or a command line."""

    host: str
    port: int
    dbname: str
    user: str | None = None
    password: Secret | None = None
    options: tuple[tuple[str, str], ...] = ()  # extra libpq keywords (sslmode, ...)

    @property
    def at(self) -> str:
        return f"{self.host}:{self.port}"

    def with_database(self, dbname: str) -> PgTarget:
        return replace(self, dbname=dbname)


def conninfo(target: PgTarget) -> str:
    """A libpq keyword/value string for `target`, without its password."""
    pairs = [("host", target.host), ("port", str(target.port)), ("dbname", target.dbname)]
    if target.user:
        pairs.append(("user", target.user))
    pairs += [*target.options, ("application_name", APPLICATION_NAME)]
    return " ".join(f"{key}={_conninfo_value(value)}" for key, value in pairs)


def _conninfo_value(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


_PASSWORD_KEYS = frozenset({"password", "passfile"})
_FORBIDDEN_OPTIONS = frozenset({"host", "hostaddr", "port", "dbname", "user", "service"})


def parse_url(url: str) -> PgTarget:
    """`postgresql://user[:password]@host[:port]/dbname[?sslmode=...]`. A unix socket
    directory is given percent-encoded as the host (`%2Fvar%2Frun%2Fpostgresql`)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise PgBadUrl(detail=f"scheme {parts.scheme!r}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise PgBadUrl(detail="the port is not a number") from None
    host = unquote(_raw_host(parts.netloc))  # not .hostname: it lowercases a socket path
    dbname = unquote(parts.path.lstrip("/"))
    if not host:
        raise PgBadUrl(detail="no host")
    if not dbname:
        raise PgBadUrl(detail="no database name")
    query = parse_qsl(parts.query, keep_blank_values=True)
    password = next((v for k, v in query if k == "password"), None)
    if parts.password is not None:
        password = unquote(parts.password)
    bad = sorted({k for k, _ in query if k in _FORBIDDEN_OPTIONS or k == "passfile"})
    if bad:
        raise PgBadUrl(detail=f"give {', '.join(bad)} in the URL itself, not as a parameter")
    options = tuple((k, v) for k, v in query if k not in _PASSWORD_KEYS)
    return PgTarget(host=host, port=port, dbname=dbname,
                    user=unquote(parts.username) if parts.username else None,
                    password=Secret(password) if password else None, options=options)


def _raw_host(netloc: str) -> str:
    hostport = netloc.rsplit("@", 1)[-1]
    if hostport.startswith("["):  # [::1]:5432
        return hostport[1:hostport.find("]")]
    return hostport.rsplit(":", 1)[0] if ":" in hostport else hostport


def restore_target(source: PgTarget, target: str | None) -> PgTarget:
    """Where a restore goes: the source's own database (None), another database on the
    same server (a name), or anywhere (a URL; it borrows the source's password when it
    names the same server and user and brings none of its own)."""
    if target is None:
        return source
    if "://" not in target:
        if not target or "\x00" in target:
            raise UsageError("the target database name is empty")
        return source.with_database(target)
    found = parse_url(target)
    same_login = (found.host, found.port, found.user or source.user) == (
        source.host, source.port, source.user)
    if found.password is None and same_login:
        found = replace(found, user=found.user or source.user, password=source.password)
    return found


# --- versions -----------------------------------------------------------------------------

_CLIENT_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


Major = tuple[int, int]  # (16, 0); (9, 6) before PostgreSQL 10, whose majors had two parts


def client_major(version_output: str) -> Major:
    """(15, 0) from 'pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'; (9, 6) from
    'pg_dump (PostgreSQL) 9.6.24'."""
    found = _CLIENT_VERSION.search(version_output)
    if found is None:
        raise PostgresError(detail=f"cannot read the client version from {version_output!r}")
    major = int(found.group(1))
    return (major, 0) if major >= 10 else (major, int(found.group(2) or 0))


def server_major(server_version_num: int) -> Major:
    """(16, 0) from 160002; (9, 6) from 90624."""
    if server_version_num >= 100000:
        return (server_version_num // 10000, 0)
    return (server_version_num // 10000, server_version_num // 100 % 100)


def check_client_version(program: str, client_output: str, server_version_num: int,
                         at: str) -> None:
    """pg_dump refuses to dump a server newer than itself: say which package brings a new
    enough one."""
    client, server = client_major(client_output), server_major(server_version_num)
    if client < server:
        raise PgClientTooOld(program=program, client=_label(client), server=_label(server),
                             at=at, package=f"postgresql-client-{_label(server)}")


def _label(major: Major) -> str:
    return str(major[0]) if major[0] >= 10 else f"{major[0]}.{major[1]}"


# --- what a failed client said -------------------------------------------------------------


def classify_failure(program: str, what: str, target: PgTarget, stderr: str) -> PostgresError:
    """The error for a client that exited non-zero with `stderr` (libpq's own words)."""
    text = scrub(stderr, target.password)
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return PgAuthFailed(at=target.at, user=target.user or "(default)",
                            reason="password authentication failed")
    if f'database "{target.dbname.lower()}" does not exist' in lowered:
        return PgDatabaseMissing(at=target.at, database=target.dbname)
    for needle, reason in _UNREACHABLE:
        if needle in lowered:
            return PgUnreachable(at=target.at, reason=reason)
    return PgCommandFailed(program=program, what=what, at=target.at, reason=first_error(text))


_UNREACHABLE = (
    ("connection refused", "connection refused"),
    ("could not translate host name", "unknown host"),
    ("timeout expired", "timed out"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("no such file or directory", "no server socket there"),
)


def first_error(stderr: str) -> str:
    """The most telling line of a client's stderr, without its "pg_dump: error:" prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
    chosen = re.sub(r"^(pg_dump|pg_restore|psql)(:\S*)*:\s*(error:\s*)?", "", chosen)
    return chosen[:300] or "exited with an error and said nothing"


def scrub(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


# --- item names ----------------------------------------------------------------------------

SCHEMA_ITEM = "database.pgdump"


def table_item_path(schema: str, table: str) -> str:
    """`tables/<schema>/<table>.sql` with "/", "%", control characters and leading dots
    percent-encoded, so any identifier makes one safe path segment."""
    return f"tables/{_segment(schema)}/{_segment(table)}.sql"


def _segment(name: str) -> str:
    encoded = quote(name, safe=" !$&'()+,;=@[]^_`{}~-")
    return "%2E" + encoded[1:] if encoded.startswith(".") else encoded


def dump_table_pattern(schema: str, table: str) -> str:
    """A pg_dump `--table` pattern that matches exactly this table: inside double quotes
    the pattern characters (* ? .) are literal."""
    return f"{_quote_ident(schema)}.{_quote_ident(table)}"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableRef:
    schema: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def select_tables(tables: list[TableRef], wanted: Iterable[str]) -> list[TableRef]:
    """The tables `wanted` names ("schema.table", or "table" when one schema has it), in
    snapshot order; every name must match."""
    wanted = list(wanted)
    if not wanted:
        return list(tables)
    chosen: set[TableRef] = set()
    for name in wanted:
        exact = [t for t in tables if t.qualified == name]
        bare = [t for t in tables if t.name == name]
        matches = exact or bare
        if len(matches) != 1:
            known = ", ".join(t.qualified for t in tables[:20]) or "no tables"
            if len(matches) > 1:
                known = "several schemas: " + ", ".join(t.qualified for t in matches)
            raise PgUnknownTable(name=name, known=known)
        chosen.add(matches[0])
    return [t for t in tables if t in chosen]


# --- filters over pg_dump's plain output ---------------------------------------------------


def drop_lines(parts: Iterable[bytes], lines: tuple[bytes, ...]) -> Iterator[bytes]:
    """`parts` without any occurrence of the exact `lines` (each ends with b"\\n"), even
    when one straddles two parts. pg_dump writes `\\restrict <key>` and `\\unrestrict <key>`
    with a random key into every plain dump; with them the bytes of an unchanged table
    would differ between two captures and never deduplicate."""
    if not lines:
        yield from parts
        return
    keep = max(map(len, lines)) - 1
    carry = b""
    for part in parts:
        data = carry + part
        for line in lines:
            data = data.replace(line, b"")
        cut = max(0, len(data) - keep)
        carry = data[cut:]
        if cut:
            yield data[:cut]
    if carry:
        yield carry


class CopyRowCounter:
    """Counts the rows of the COPY block in a plain data-only dump of one table while the
    dump streams past: the lines between `COPY ... FROM stdin;` and the `\\.` line. A data
    line can never be `\\.` alone (COPY escapes a backslash as `\\\\`)."""

    _START = b" FROM stdin;\n"
    _END = b"\n\\.\n"

    def __init__(self) -> None:
        self.rows = 0
        self.state = "header"  # -> "rows" -> "done"
        self._tail = b""  # the last bytes seen: a start or end marker may straddle parts
        self._tail_newlines = 0  # newlines in _tail already counted as rows

    def feed(self, part: bytes) -> None:
        if self.state == "header":
            data = self._tail + part
            start = data.find(self._START)
            if start < 0:
                self._tail = data[-(len(self._START) - 1):]
                return
            # A virtual newline before the first row makes an empty table's "\\." line
            # match the end marker too; it is never counted.
            self.state, self._tail, self._tail_newlines = "rows", b"\n", 1
            part = data[start + len(self._START):]
        if self.state == "rows":
            self._count(part)

    def _count(self, part: bytes) -> None:
        data = self._tail + part
        end = data.find(self._END)
        if end >= 0:
            self.rows += data.count(b"\n", 0, end + 1) - self._tail_newlines
            self.state = "done"
            return
        self.rows += data.count(b"\n") - self._tail_newlines
        self._tail = data[-(len(self._END) - 1):]
        self._tail_newlines = self._tail.count(b"\n")
