"""The PostgreSQL source's pure parts: URLs, versions, item names, stream filters."""

from __future__ import annotations

import pytest

from vault.config.secrets import Secret
from vault.sources.postgresql.tools import (
    CopyRowCounter,
    PgAuthFailed,
    PgBadUrl,
    PgClientTooOld,
    PgCommandFailed,
    PgDatabaseMissing,
    PgTarget,
    PgUnknownTable,
    PgUnreachable,
    TableRef,
    check_client_version,
    classify_failure,
    conninfo,
    drop_lines,
    dump_table_pattern,
    parse_url,
    restore_target,
    select_tables,
    table_item_path,
)

DUMP = (b"--\n-- header\n--\n\nCOPY public.t (k, v) FROM stdin;\n"
        b"1\tone\n2\t\\\\.\n3\t-- x FROM stdin;\n\\.\n\n\nSELECT pg_catalog.setval('s', 3);\n")


@pytest.mark.parametrize(("client", "server"), [
    ("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 160002),
    ("pg_dump (PostgreSQL) 9.6.24", 100005),
    ("pg_dump (PostgreSQL) 16.1", 170000),
])
def test_a_pg_dump_older_than_the_server_names_the_package(client: str, server: int) -> None:
    with pytest.raises(PgClientTooOld) as failed:
        check_client_version("pg_dump", client, server, "db.example:5432")
    major = str(server // 10000)
    assert str(failed.value).endswith(f"install postgresql-client-{major} "
                                      f"(apt-get install postgresql-client-{major})")
    assert "older than the PostgreSQL" in str(failed.value)


@pytest.mark.parametrize(("client", "server"), [
    ("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 150004),
    ("pg_dump (PostgreSQL) 16.2", 150018),
    ("pg_dump (PostgreSQL) 15.2", 90624),
    ("pg_dump (PostgreSQL) 9.6.24", 90620),
])
def test_a_pg_dump_as_new_as_the_server_passes(client: str, server: int) -> None:
    check_client_version("pg_dump", client, server, "h:1")


def test_urls_give_host_port_database_user_and_a_masked_password() -> None:
    found = parse_url("postgresql://app:s%40cret@db.example:6543/shop?sslmode=require")
    assert (found.host, found.port, found.dbname, found.user) == (
        "db.example", 6543, "shop", "app")
    assert isinstance(found.password, Secret) and found.password == "s@cret"
    assert "s@cret" not in repr(found) + conninfo(found)
    assert "sslmode='require'" in conninfo(found)
    socket = parse_url("postgres://app@%2Fvar%2Frun%2FPostgres/db")
    assert (socket.host, socket.port) == ("/var/run/Postgres", 5432)


@pytest.mark.parametrize("url", ["postgresql://host:5432/", "postgresql:///db",
                                 "postgresql://h:port/db", "postgresql://h/db?host=x"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(PgBadUrl):
        parse_url(url)


def test_conninfo_quotes_values() -> None:
    target = PgTarget("h", 5, "it's \\ db", "u")
    assert conninfo(target) == ("host='h' port='5' dbname='it\\'s \\\\ db' user='u' "
                                "application_name='vault'")


def test_restore_targets() -> None:
    source = PgTarget("h", 5432, "app", "u", Secret("pw"))
    assert restore_target(source, None) == source
    assert restore_target(source, "copy") == PgTarget("h", 5432, "copy", "u", Secret("pw"))
    elsewhere = restore_target(source, "postgresql://u@other/copy")
    assert elsewhere.host == "other" and elsewhere.password is None
    same = restore_target(source, "postgresql://h:5432/copy")
    assert same.user == "u" and same.password == "pw"


def test_client_failures_are_classified_without_the_password() -> None:
    target = PgTarget("h", 5432, "shop", "app", Secret("hunter2"))
    said = 'pg_dump: error: connection to server at "h", port 5432 failed: '
    assert isinstance(classify_failure("pg_dump", "x", target, said + "Connection refused"),
                      PgUnreachable)
    auth = classify_failure("pg_dump", "x", target,
                            said + 'FATAL:  password authentication failed for user "app"')
    assert isinstance(auth, PgAuthFailed)
    missing = classify_failure("psql", "x", target, said + 'FATAL:  database "shop" does not exist')
    assert isinstance(missing, PgDatabaseMissing)
    other = classify_failure("pg_dump", "table t", target,
                             "pg_dump: error: query failed: ERROR:  hunter2 is wrong\n")
    assert isinstance(other, PgCommandFailed)
    assert str(other) == "pg_dump failed for table t at h:5432: query failed: ERROR:  *** is wrong"


def test_item_paths_are_one_safe_segment_per_name() -> None:
    assert table_item_path("public", "orders") == "tables/public/orders.sql"
    assert table_item_path("a/b", "..") == "tables/a%2Fb/%2E..sql"
    assert table_item_path("s", "100%\n") == "tables/s/100%25%0A.sql"
    assert dump_table_pattern('we"ird', "t*?.x") == '"we""ird"."t*?.x"'


def test_tables_are_selected_by_qualified_or_unique_bare_name() -> None:
    tables = [TableRef("a", "t"), TableRef("b", "t"), TableRef("b", "u")]
    assert select_tables(tables, []) == tables
    assert select_tables(tables, ["u", "a.t"]) == [TableRef("a", "t"), TableRef("b", "u")]
    with pytest.raises(PgUnknownTable, match=r"several schemas: a\.t, b\.t"):
        select_tables(tables, ["t"])
    with pytest.raises(PgUnknownTable, match="no table 'v'"):
        select_tables(tables, ["v"])


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_row_counting_and_key_lines_survive_any_split(size: int) -> None:
    stream = b"\\restrict KEY\n" + DUMP + b"\\unrestrict KEY\n\n"
    parts = [stream[i:i + size] for i in range(0, len(stream), size)]
    cleaned = b"".join(drop_lines(parts, (b"\\restrict KEY\n", b"\\unrestrict KEY\n")))
    assert cleaned == DUMP + b"\n"
    counter = CopyRowCounter()
    for i in range(0, len(DUMP), size):
        counter.feed(DUMP[i:i + size])
    assert (counter.rows, counter.state) == (3, "done")


def test_an_empty_table_has_no_rows() -> None:
    counter = CopyRowCounter()
    counter.feed(b"COPY public.t (k) FROM stdin;\n\\.\n\n")
    assert (counter.rows, counter.state) == (0, "done")
