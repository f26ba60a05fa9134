"""vault installed from its wheel, far from the checkout, initialises, backs up, restores
and verifies its journal: the wheel carries everything, the SQL migrations included.

The wheel is built from a copy of the sources (setuptools writes `build/` and an
`*.egg-info` beside what it builds, and the checkout stays untouched), by pip in its
isolated build environment (it fetches the build backend from the package index). It is
installed into a fresh venv that has no path to the checkout's `src/`. The runtime
dependencies come from the running interpreter's site-packages through `.pth` lines; a
path added that way is searched for modules but its own `.pth` files (the checkout's
editable install among them) are not read, so `vault` can only come from the wheel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # ~10 s to build, a few more to install and run


def _copy_sources(dest: Path) -> Path:
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, dest / name)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(CHECKOUT / "migrations", dest / "migrations", ignore=skip)
    # symlinks=True: src/vault/migrations stays a link, now to the copy's migrations/
    shutil.copytree(CHECKOUT / "src", dest / "src", symlinks=True, ignore=skip)
    return dest


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{argv}: exit {result.returncode}\n{result.stderr}"
    return result


def _build_wheel(tmp_path: Path) -> Path:
    sources = _copy_sources(tmp_path / "sources")
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "-q", "-w", dist, sources, cwd=tmp_path)
    [wheel] = dist.glob("vault_backup-*.whl")
    return wheel


def _venv_with(wheel: Path, venv: Path) -> Path:
    """A venv holding `wheel`, plus a path (not a site dir) to the installed dependencies."""
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
         "--no-index", "--disable-pip-version-check", "-q", wheel, cwd=venv.parent)
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                cwd=venv.parent).stdout.strip()
    # every site-packages this interpreter sees (its venv's, and any a .pth added to it)
    dependencies = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    (Path(site) / "zz_vault_test_dependencies.pth").write_text(
        "".join(f"{p}\n" for p in dependencies))
    return venv / "bin"


def test_the_wheel_ships_every_migration(tmp_path: Path, vault_env, fs) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        shipped = {Path(n).name: archive.read(n) for n in archive.namelist()
                   if n.startswith("vault/migrations/")}
    in_checkout = {p.name: p.read_bytes() for p in (CHECKOUT / "migrations").glob("*.sql")}
    assert in_checkout and shipped == in_checkout

    bin_dir = _venv_with(wheel, tmp_path / "venv")
    work = tmp_path / "work"
    work.mkdir()
    env = {**vault_env.env, "PATH": "/usr/bin:/bin"}  # home and repository in tmp_path
    where = _run(bin_dir / "python", "-c", "import sys, vault, vault.journal.migrate as m; "
                 "print(vault.__file__); print(m.MIGRATIONS_DIR); print(*sys.path, sep='\\n')",
                 cwd=work, env=env).stdout.splitlines()
    assert all(line.startswith(str(tmp_path / "venv")) for line in where[:2]), where
    assert not any(line.startswith(str(CHECKOUT / "src")) for line in where), where

    source = tmp_path / "data"
    files = [fs.write_random(source / "a.bin", 300_000, seed=1),
             fs.write_random(source / "nested" / "b.bin", 70_000, seed=2)]
    vault = str(bin_dir / "vault")
    _run(vault, "init", cwd=work, env=env)
    _run(vault, "backup", source, cwd=work, env=env)
    target = tmp_path / "restored"
    _run(vault, "restore", f"latest:{source}", "--target", target, cwd=work, env=env)
    for original in files:  # `latest:<dir>` restores the directory's contents
        assert (target / original.relative_to(source)).read_bytes() == original.read_bytes()
    fs.assert_same_tree(source, target, include_root=False)
    verified = _run(vault, "journal", "verify", "--json", cwd=work, env=env)
    summary = json.loads(verified.stdout.splitlines()[-1])
    assert (summary["ok"], summary["repository_checked"]) == (True, True), summary
    assert summary["events_checked"] > 0 and summary["findings"] == []
    assert sorted(p.name for p in work.iterdir()) == []  # nothing beside the working dir
