"""Running PostgreSQL's own client programs: a psql session that holds the capture's
snapshot open, pg_dump whose stdout is streamed, and psql / pg_restore fed from a stored
item through stdin. No driver library: the programs that dump and restore are needed
anyway, and they speak every server version and authentication method libpq does.

The password reaches the programs through PGPASSWORD in their environment, never argv
(which every user can read in /proc), and `-w` stops them from ever prompting.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vault.sources.postgresql.tools import (
    PgClientNotFound,
    PgTarget,
    PostgresError,
    check_client_version,
    classify_failure,
    conninfo,
)

READ_SIZE = 1 << 20
CONNECT_TIMEOUT_SECONDS = "10"
_F_SETPIPE_SZ = 1031  # Linux: a 1 MiB pipe lets pg_dump run ahead of the reader


@dataclass(frozen=True)
class PgClients:
    """Where pg_dump, psql and pg_restore are, and what they can do."""

    pg_dump: str
    psql: str
    pg_restore: str

    def version(self, program: str) -> str:
        done = subprocess.run([program, "--version"], capture_output=True, text=True,
                              check=False)
        return done.stdout.strip()

    def supports_restrict_key(self) -> bool:
        """pg_dump >= 17.6/16.10/15.14 writes `\\restrict <key>` lines into plain dumps."""
        done = subprocess.run([self.pg_dump, "--help"], capture_output=True, text=True,
                              check=False)
        return "--restrict-key" in done.stdout

    def psql_has_restrict(self) -> bool:
        done = subprocess.run([self.psql, "--help=commands"], capture_output=True, text=True,
                              check=False)
        return "\\restrict" in done.stdout

    def check_pg_dump_for(self, server_version_num: int, at: str) -> str:
        """pg_dump's version line, after checking it can dump that server."""
        line = self.version(self.pg_dump)
        check_client_version("pg_dump", line, server_version_num, at)
        return line


def find_clients(pg_dump_path: str | None) -> PgClients:
    """The client programs: `pg_dump_path` (psql and pg_restore beside it), else PATH."""
    if pg_dump_path is not None:
        pg_dump = Path(pg_dump_path)
        if not (pg_dump.is_file() and os.access(pg_dump, os.X_OK)):
            raise PgClientNotFound(program="pg_dump", where=f" at {pg_dump}")
        return PgClients(str(pg_dump), _beside(pg_dump, "psql"), _beside(pg_dump, "pg_restore"))
    return PgClients(_on_path("pg_dump"), _on_path("psql"), _on_path("pg_restore"))


def _beside(pg_dump: Path, program: str) -> str:
    sibling = pg_dump.with_name(program)
    return str(sibling) if sibling.is_file() else _on_path(program)


def _on_path(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise PgClientNotFound(program=program, where="")
    return found


def client_env(target: PgTarget) -> dict[str, str]:
    """The environment of a client program: the caller's (PGPASSWORD, PGSSLMODE, ~/.pgpass
    keep working) plus the source's own password and a connect timeout."""
    env = dict(os.environ)
    if target.password is not None:
        env["PGPASSWORD"] = str(target.password)
    env.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECONDS)
    return env


# --- a long-lived psql session -------------------------------------------------------------


class PsqlSession:
    """One psql process on one connection, answering queries one at a time. Capture uses
    it to hold the repeatable-read transaction whose exported snapshot every pg_dump
    joins; the transaction lasts as long as the session."""

    def __init__(self, clients: PgClients, target: PgTarget) -> None:
        self.target = target
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._marker = f"__vault_{secrets.token_hex(8)}__"
        self._proc = subprocess.Popen(
            [clients.psql, "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
             "--dbname", conninfo(target)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=client_env(target),
        )

    def __enter__(self) -> PsqlSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()  # psql ends; an open transaction is rolled back
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()

    def text(self, sql: str) -> str:
        """The unaligned output of `sql` (one or more statements)."""
        return self.feed([sql.encode()], sql)

    def feed(self, parts: Iterable[bytes], what: str = "") -> str:
        """Write `parts` (statements, and the data of a `COPY ... FROM stdin` among them)
        to the session, then return what they printed."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            for part in parts:
                self._proc.stdin.write(part)
            self._proc.stdin.write(f"\n\\echo {self._marker}\n".encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise self._failure(what) from None
        lines: list[bytes] = []
        while True:
            line = self._proc.stdout.readline()
            if not line:
                raise self._failure(what)
            if line.rstrip(b"\n") == self._marker.encode():
                return b"".join(lines).decode().rstrip("\n")
            lines.append(line)

    def json(self, sql: str) -> Any:
        """The one jsonb value `sql` selects (jsonb's text form is a single line)."""
        return json.loads(self.text(sql))

    def _failure(self, sql: str) -> PostgresError:
        self._proc.wait(timeout=10)
        return classify_failure("psql", self.target.dbname, self.target,
                                _read_all(self._stderr))


def _read_all(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode(errors="replace")


# --- one-shot programs ---------------------------------------------------------------------


def stream_output(argv: list[str], target: PgTarget, what: str) -> Iterator[bytes]:
    """The stdout of `argv`, part by part, as it is produced. Only when the program has
    exited with status 0 does the stream end normally: a dump cut short by an error is
    never taken for a complete one."""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr, env=client_env(target))
        assert proc.stdout is not None
        with contextlib.suppress(OSError):
            fcntl.fcntl(proc.stdout.fileno(), _F_SETPIPE_SZ, READ_SIZE)
        try:
            fd = proc.stdout.fileno()
            while part := os.read(fd, READ_SIZE):  # whatever the pipe holds, no waiting
                yield part
            if proc.wait() != 0:
                raise classify_failure(Path(argv[0]).name, what, target, _read_all(stderr))
        finally:
            if proc.poll() is None:  # the reader stopped early: do not leave it running
                proc.kill()
                proc.wait()
            proc.stdout.close()


def feed_input(argv: list[str], target: PgTarget, what: str, parts: Iterable[bytes]) -> None:
    """Run `argv` with `parts` as its stdin; raise if it fails."""
    _feed(argv, target, what, parts, None)


def capture_output(argv: list[str], target: PgTarget, what: str,
                   parts: Iterable[bytes]) -> str:
    """Run `argv` with `parts` as its stdin; its (small) stdout."""
    with tempfile.TemporaryFile() as stdout:
        _feed(argv, target, what, parts, stdout)
        return _read_all(stdout)


def _feed(argv: list[str], target: PgTarget, what: str, parts: Iterable[bytes],
          stdout: IO[bytes] | None) -> None:
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL if stdout is None else stdout,
                                stderr=stderr, env=client_env(target))
        assert proc.stdin is not None
        try:
            for part in parts:
                proc.stdin.write(part)
        except BrokenPipeError:
            pass  # it stopped reading: its exit status and stderr say why
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            code = proc.wait()
        if code != 0:
            raise classify_failure(Path(argv[0]).name, what, target, _read_all(stderr))


def run_sql(clients: PgClients, target: PgTarget, sql: str,
            variables: dict[str, str] | None = None) -> str:
    """Run a script with psql; `variables` are interpolated by psql itself (`:'name'` as a
    literal, `:"name"` as an identifier), so no value is ever quoted by hand."""
    argv = [clients.psql, "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1"]
    for name, value in (variables or {}).items():
        argv += ["-v", f"{name}={value}"]
    argv += ["--dbname", conninfo(target)]
    done = subprocess.run(argv, input=sql.encode(), capture_output=True, check=False,
                          env=client_env(target))
    if done.returncode != 0:
        raise classify_failure("psql", target.dbname, target,
                               done.stderr.decode(errors="replace"))
    return done.stdout.decode().strip()
