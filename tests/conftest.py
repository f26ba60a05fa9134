"""Shared fixtures: an isolated vault environment per test and the real `vault` command.

Everything lives under `tmp_path`, so tests run in parallel under pytest-xdist. The one
autouse fixture runs every test in its own `tmp_path` (never in the checkout; and
`checkout_guard` fails the run if a file appeared there anyway). Tests that run vault ask
for `vault_env` (directly or through `run_vault` or `vault`), and the rest of the suite
sees the untouched environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from checkout_guard import pytest_sessionfinish, pytest_sessionstart
from privileges import WITHOUT_DAC

__all__ = ["pytest_sessionfinish", "pytest_sessionstart"]  # hooks, found here by pytest

VAULT_BIN = Path(sys.executable).with_name("vault")
PASSWORD = "correct horse battery staple 7f3a"
#: scrypt N for tests (keys.py honours VAULT_KDF_N >= 1024); the default costs ~0.1 s a try
FAST_KDF_N = "1024"


# --- the environment ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test (or the code it runs) writes beside the working directory lands in
    its tmp_path, not in the checkout the suite was started from."""
    monkeypatch.chdir(tmp_path)


@dataclass
class VaultEnv:
    """Where one test's vault keeps everything, and the environment it runs with."""

    root: Path
    repo: Path
    home: Path
    password: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.home / "state" / "vault"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache" / "vault"

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.db"


def _isolated_env(base: dict[str, str], home: Path, repo: Path, password: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("VAULT_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_DATA_HOME=str(home / "data"),
        VAULT_PASSWORD=password,
        VAULT_REPOSITORY=str(repo),
        VAULT_KDF_N=FAST_KDF_N,
        LC_ALL="C.UTF-8",
        LANG="C.UTF-8",
    )
    return env


@pytest.fixture
def vault_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VaultEnv:
    """HOME, the XDG dirs, VAULT_PASSWORD, VAULT_REPOSITORY (tmp/repo) and a fast KDF,
    set in this process (for the Python API) and handed to every `vault` subprocess."""
    home = tmp_path / "home"
    home.mkdir()
    repo = tmp_path / "repo"
    env = _isolated_env(dict(os.environ), home, repo, PASSWORD)
    for name in [k for k in os.environ if k.startswith("VAULT_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return VaultEnv(root=tmp_path, repo=repo, home=home, password=PASSWORD, env=env)


# --- running the real command ---------------------------------------------------------------

RunVault = Callable[..., "subprocess.CompletedProcess[str]"]


def _run(
    venv: VaultEnv,
    args: tuple[Any, ...],
    *,
    input: str | bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    binary: bool = False,
    timeout: float = 300,
    unprivileged: bool = False,
) -> subprocess.CompletedProcess[Any]:
    argv = [str(VAULT_BIN), *(os.fspath(a) if isinstance(a, Path) else a for a in args)]
    if unprivileged:  # as root, but bound by file modes like any user (see WITHOUT_DAC)
        argv = [*WITHOUT_DAC, *argv]
    full_env = {**venv.env, **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    if isinstance(input, str) and binary:
        input = input.encode()
    # Never the runner's own stdin: a terminal there would make vault ask (and wait).
    feed: dict[str, Any] = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(
        argv,
        **feed,
        capture_output=True,
        text=not binary,
        env=full_env,
        cwd=cwd or venv.root,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def run_vault(vault_env: VaultEnv) -> RunVault:
    """`run_vault("backup", src, "--json", input=None)` runs the installed `vault` script
    in a subprocess with the test's environment; returns the CompletedProcess (text)."""

    def run(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        return _run(vault_env, args, **kwargs)

    return run


@dataclass
class JsonResult:
    """A `vault --json` run: exit code, every JSON line, stderr."""

    code: int
    records: list[dict[str, Any]]
    stdout: str
    stderr: str

    @property
    def last(self) -> dict[str, Any]:
        assert self.records, f"no JSON output (exit {self.code}); stderr: {self.stderr}"
        return self.records[-1]

    @property
    def summary(self) -> dict[str, Any]:
        last = self.last
        assert last["type"] == "summary", f"exit {self.code}: {last}; stderr: {self.stderr}"
        return last


#: every `type` a --json record may have (docs/cli.md#json-output)
RECORD_TYPES = ("progress", "summary", "error", "delivery", "source", "estimate", "job",
                "next_run", "storage", "alert", "worker")


def parse_json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line must be one JSON object (that is the --json contract)."""
    records = []
    for line in stdout.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert record.get("type") in RECORD_TYPES, line
        records.append(record)
    return records


class VaultCLI:
    """The `vault` command with the test's environment, plus a few common sequences."""

    def __init__(self, env: VaultEnv) -> None:
        self.env = env

    def run(self, *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        return _run(self.env, args, **kwargs)

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start `vault ARGS` without waiting (output discarded unless redirected)."""
        argv = [str(VAULT_BIN), *(os.fspath(a) if isinstance(a, Path) else a for a in args)]
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        return subprocess.Popen(argv, env=self.env.env, cwd=self.env.root, **kwargs)

    def ok(self, *args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run and insist on exit 0."""
        done = self.run(*args, **kwargs)
        assert done.returncode == 0, (
            f"vault {' '.join(map(str, args))} exited {done.returncode}\n"
            f"stdout: {done.stdout}\nstderr: {done.stderr}"
        )
        return done

    def json(self, *args: Any, **kwargs: Any) -> JsonResult:
        """Run with --json; check the output is JSON lines ending in one summary/error."""
        done = self.run(*args, "--json", **kwargs)
        records = parse_json_lines(done.stdout)
        finals = [r for r in records if r["type"] in ("summary", "error")]
        assert len(finals) == 1 and records[-1] is finals[0], (
            f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}")
        return JsonResult(done.returncode, records, done.stdout, done.stderr)

    def query(self, *args: Any, env: dict[str, str | None] | None = None) -> JsonResult:
        """`vault ARGS --json` run in this process through `vault.cli.main.main` (same exit
        code mapping, ~20x faster than a subprocess): for the many read-only look-ups
        (journal, snapshots, ls) that tests make around the operations they exercise."""
        from click.testing import CliRunner

        from vault.cli.main import main

        argv = [os.fspath(a) if isinstance(a, Path) else str(a) for a in args] + ["--json"]
        code = 0
        with CliRunner().isolation(env={**self.env.env, **(env or {})}) as (out, err, _):
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
        return JsonResult(code, parse_json_lines(stdout), stdout, stderr)

    def init(self) -> Path:
        self.ok("init")
        return self.env.repo

    def backup(self, *args: Any, expect: int = 0, **kwargs: Any) -> dict[str, Any]:
        """`vault backup ARGS --json`; its summary (asserting the exit code)."""
        result = self.json("backup", *args, **kwargs)
        assert result.code == expect, f"exit {result.code}: {result.last}\n{result.stderr}"
        return result.summary

    def restore(self, *args: Any, expect: int = 0, **kwargs: Any) -> dict[str, Any]:
        result = self.json("restore", *args, **kwargs)
        assert result.code == expect, f"exit {result.code}: {result.last}\n{result.stderr}"
        return result.summary

    def events(self, *types: str) -> list[dict[str, Any]]:
        """Journal events (oldest first), optionally only of these types."""
        args = [a for t in types for a in ("--type", t)]
        result = self.query("journal", *args)
        assert result.code == 0, result.stderr
        return list(result.summary["events"])


@pytest.fixture(scope="session")
def vault_at() -> Callable[[Path], VaultCLI]:
    """A `vault` living entirely under `root` (home, repository), for fixtures wider than
    one test: it only runs subprocesses and leaves this process's environment alone."""

    def make(root: Path) -> VaultCLI:
        home, repo = root / "home", root / "repo"
        home.mkdir(parents=True, exist_ok=True)
        env = _isolated_env(dict(os.environ), home, repo, PASSWORD)
        return VaultCLI(VaultEnv(root=root, repo=repo, home=home, password=PASSWORD, env=env))

    return make


@pytest.fixture
def vault(vault_env: VaultEnv) -> VaultCLI:
    return VaultCLI(vault_env)


@pytest.fixture
def vault_repo(vault: VaultCLI) -> VaultCLI:
    """`vault` with an initialised repository at vault_env.repo."""
    vault.init()
    return vault


# --- comparing file trees -------------------------------------------------------------------


@dataclass(frozen=True)
class Meta:
    """What a restore must reproduce for one entry."""

    type: str
    mode: int
    size: int
    mtime_ns: int
    link_target: str | None
    sha256: str | None


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tree_meta(root: Path | str, *, include_root: bool = True) -> dict[str, Meta]:
    """Relative path (str; undecodable bytes kept via surrogateescape) -> Meta, for every
    entry under `root`, never following symlinks."""
    root = os.fspath(root)
    result: dict[str, Meta] = {}

    def entry(path: str) -> Meta:
        st = os.lstat(path)
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            return Meta("symlink", stat.S_IMODE(mode), 0, st.st_mtime_ns, os.readlink(path),
                        None)
        if stat.S_ISDIR(mode):
            return Meta("dir", stat.S_IMODE(mode), 0, st.st_mtime_ns, None, None)
        if stat.S_ISREG(mode):
            return Meta("file", stat.S_IMODE(mode), st.st_size, st.st_mtime_ns, None,
                        sha256_file(path))
        return Meta("other", stat.S_IMODE(mode), 0, st.st_mtime_ns, None, None)

    if include_root:
        result["."] = entry(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            result[os.path.relpath(full, root)] = entry(full)
    return result


def assert_same_tree(original: Path | str, restored: Path | str, *,
                     include_root: bool = True) -> None:
    """Same entries with the same type, mode, size, mtime, link target and content."""
    want = tree_meta(original, include_root=include_root)
    got = tree_meta(restored, include_root=include_root)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, f"missing: {missing!r}; unexpected: {extra!r}"
    differing = {p: (want[p], got[p]) for p in want if want[p] != got[p]}
    assert not differing, "differences (original, restored):\n" + "\n".join(
        f"  {p!r}: {a} != {b}" for p, (a, b) in sorted(differing.items()))
    diff = subprocess.run(["diff", "-r", "--no-dereference", os.fspath(original),
                           os.fspath(restored)], capture_output=True, check=False)
    assert diff.returncode == 0, diff.stdout.decode(errors="replace")


def restored_path(target: Path, original: Path) -> Path:
    """Where a full restore into `target` puts `original` (snapshots keep absolute paths)."""
    return target / original.resolve().relative_to("/")


def dir_digest(root: Path) -> str:
    """One hash over every path, mode, size and content under `root` (a repository)."""
    h = hashlib.sha256()
    for path, meta in sorted(tree_meta(root).items()):
        h.update(repr((path, meta.type, meta.mode, meta.size, meta.link_target,
                       meta.sha256)).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def dir_size(root: Path) -> int:
    """Sum of regular file sizes under `root` (what a repository takes, `du`-like)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def write_random(path: Path, size: int, seed: int) -> Path:
    """`size` pseudo-random (incompressible) bytes, reproducible from `seed`."""
    import random

    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 << 20)
            f.write(rng.randbytes(n))
            left -= n
    return path


def write_compressible(path: Path, size: int, seed: int) -> Path:
    """Text-like bytes that zstd shrinks a lot (log lines with a counter)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        n = 0
        written = 0
        while written < size:
            block = b"".join(
                b"2024-05-01T02:%02d:%02d INFO seed=%d request id=%08d served in %d ms\n"
                % (i // 60 % 60, i % 60, seed, n + i, (n + i) % 97) for i in range(2000))
            n += 2000
            block = block[: size - written]
            f.write(block)
            written += len(block)
    return path


class FsTools:
    """The helpers above, for tests (conftest modules are not imported directly)."""

    tree_meta = staticmethod(tree_meta)
    assert_same_tree = staticmethod(assert_same_tree)
    restored_path = staticmethod(restored_path)
    dir_digest = staticmethod(dir_digest)
    dir_size = staticmethod(dir_size)
    sha256_file = staticmethod(sha256_file)
    write_random = staticmethod(write_random)
    write_compressible = staticmethod(write_compressible)
    parse_json_lines = staticmethod(parse_json_lines)


@pytest.fixture(scope="session")
def fs() -> FsTools:
    return FsTools()


# --- the Python API on the test's repository -----------------------------------------------


@pytest.fixture
def open_repo(vault_env: VaultEnv) -> Iterator[Callable[[], Any]]:
    """Open the test's repository with the Python API (after `vault init`)."""
    from vault.repository.repository import Repository
    from vault.storage.local import LocalStorage

    opened: list[Any] = []

    def open_() -> Any:
        storage = LocalStorage(vault_env.repo)
        opened.append(storage)
        repo = Repository.open(storage, vault_env.password)
        repo.load_index()
        return repo

    yield open_
    for storage in opened:
        storage.close()


@pytest.fixture
def fast_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt with N=1024 for key files made in this process (keys.py reads VAULT_KDF_N)."""
    monkeypatch.setenv("VAULT_KDF_N", FAST_KDF_N)


@pytest.fixture
def unlocked_repo(tmp_path: Path, fast_kdf: None) -> Iterator[Any]:
    """A new repository on local storage under tmp_path, opened with PASSWORD, with
    small chunks (64 KiB average) so tests get several chunks from little data."""
    from vault.repository.repository import Repository
    from vault.storage.local import LocalStorage

    storage = LocalStorage(tmp_path / "unit-repo")
    repo = Repository.init(storage, PASSWORD, chunk_avg=64 << 10)
    repo.load_index()
    yield repo
    storage.close()
