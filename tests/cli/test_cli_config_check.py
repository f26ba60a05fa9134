"""`vault config check` and config errors through the real CLI process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

VAULT = str(Path(sys.executable).with_name("vault"))
ROOT = Path(__file__).resolve().parents[2]

BROKEN = """\
[repository]
url = "/srv/backups/repo"
compresion_level = 3

[[sources]]
name = "app-files"
type = "files"
paths = ["/srv/app"]

[[sources]]
name = "chat-db"
type = "postgresql"
host = "127.0.0.1"
user = "chat"
dbname = "chat"
port = "five thousand"

[[schedules]]
name = "nightly"
sources = ["app-files"]
cron = "61 25 * * *"
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               XDG_STATE_HOME=str(tmp_path / "state"))
    env.pop("VAULT_CONFIG", None)
    return subprocess.run([VAULT, *args], env=env, capture_output=True, text=True, timeout=60)


def test_three_problems_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "vault.toml"
    path.write_text(BROKEN)
    result = run(tmp_path, "config", "check", str(path))
    assert result.returncode == 2
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3, result.stdout
    assert lines[0].startswith(f"{path}:3: repository.compresion_level: ")
    assert lines[1].startswith(f"{path}:16: sources[1].port: ")
    assert lines[2].startswith(f"{path}:21: schedules[0].cron: ")
    as_json = json.loads(run(tmp_path, "config", "check", str(path), "--json").stdout)
    assert [p["line"] for p in as_json["problems"]] == [3, 16, 21]
    assert as_json["ok"] is False


def test_example_config_is_clean(tmp_path: Path) -> None:
    result = run(tmp_path, "config", "check", str(ROOT / "vault.toml.example"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": ok")


def test_any_command_refuses_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "vault.toml"
    path.write_text(BROKEN)
    result = run(tmp_path, "--config", str(path), "snapshots")
    assert result.returncode == 2
    first, *details = result.stderr.strip().splitlines()
    assert first.startswith("vault: error: ") and "3 problem(s)" in first
    assert "Traceback" not in result.stderr
    assert any(":21: schedules[0].cron" in d for d in details)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "vault.toml"
    path.write_text('[repository]\nurl = "/x"\ncompression_level = = 3\n')
    result = run(tmp_path, "config", "check", str(path))
    assert result.returncode == 2
    assert result.stdout.startswith(f"{path}:3:")


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run(tmp_path, "config", "check", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "no such config file" in result.stderr
