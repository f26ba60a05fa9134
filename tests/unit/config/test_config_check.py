"""check_config_file: every problem at once, each at the line that causes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.config.document import Problem, key_lines
from vault.config.model import check_config_file, load_config
from vault.errors import ConfigError, ConfigInvalid


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vault.toml"
    path.write_text(text)
    return path


THREE_PROBLEMS = """\
[repository]
url = "/srv/repo"
compresion_level = 5

[[sources]]
type = "files"
name = "docs"
paths = ["/srv/docs"]

[[sources]]
type = "postgresql"
name = "pg"
host = "localhost"
port = "not a port"
dbname = "app"
user = "app"

[[schedules]]
name = "nightly"
cron = "61 25 * * *"
sources = ["docs", "pg"]
"""


def test_unknown_key_wrong_type_and_bad_cron_are_reported_together_with_their_lines(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, THREE_PROBLEMS)

    problems = check_config_file(path)

    assert [(p.line, p.key) for p in problems] == [
        (3, "repository.compresion_level"),
        (14, "sources[1].port"),
        (20, "schedules[0].cron"),
    ]
    assert problems[0].message == "unknown key"
    assert "integer" in problems[1].message
    assert "cron" in problems[2].message
    assert str(problems[0]) == f"{path}:3: repository.compresion_level: unknown key"


def test_load_config_raises_the_same_problems_as_strings(tmp_path: Path) -> None:
    path = write(tmp_path, THREE_PROBLEMS)

    with pytest.raises(ConfigInvalid) as raised:
        load_config(path, env={})

    assert raised.value.problems == [str(p) for p in check_config_file(path)]
    assert "3 problem(s)" in str(raised.value)


def test_a_valid_file_has_no_problems(tmp_path: Path) -> None:
    assert check_config_file(write(tmp_path, '[repository]\nurl = "/srv/repo"\n')) == []


def test_toml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[repository]\nurl = "/srv/repo"\ncompression_level 5\n')

    problems = check_config_file(path)

    assert len(problems) == 1
    assert problems[0].line == 3
    assert problems[0].key == ""
    assert str(problems[0]).startswith(f"{path}:3: ")
    assert "(at line" not in problems[0].message


def test_syntax_error_from_load_config_is_config_invalid(tmp_path: Path) -> None:
    path = write(tmp_path, "[repository\n")
    with pytest.raises(ConfigInvalid) as raised:
        load_config(path, env={})
    assert raised.value.problems[0].startswith(f"{path}:1: ")


def test_schedule_naming_an_unknown_source(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[[sources]]
type = "sqlite"
name = "app"
path = "/srv/app.db"

[[schedules]]
name = "nightly"
cron = "daily"
sources = [
  "app",
  "ghost",
]
notify = ["nobody"]
""",
    )

    problems = check_config_file(path)

    assert [(p.line, p.key) for p in problems] == [
        (11, "schedules[0].sources[1]"),
        (13, "schedules[0].notify[0]"),
    ]
    assert "no source named 'ghost' (configured: app)" in problems[0].message
    assert "no notification named 'nobody'" in problems[1].message


def test_duplicate_source_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[[sources]]
type = "sqlite"
name = "app"
path = "/srv/a.db"

[[sources]]
type = "sqlite"
name = "app"
path = "/srv/b.db"
""",
    )

    problems = check_config_file(path)

    assert [(p.line, p.key) for p in problems] == [(8, "sources[1].name")]
    assert "duplicate name 'app'" in problems[0].message


def test_reference_problems_come_with_the_other_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[repository]
compression_level = 99

[[schedules]]
name = "nightly"
cron = "daily"
sources = ["ghost"]
""",
    )

    assert [p.key for p in check_config_file(path)] == [
        "repository.compression_level",
        "schedules[0].sources[0]",
    ]


def test_missing_key_points_at_its_table_header(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[[sources]]
type = "sqlite"
name = "one"
path = "/srv/one.db"

[[sources]]
type = "postgresql"
name = "pg"
host = "db"
user = "app"
""",
    )

    problems = check_config_file(path)

    assert [(p.line, p.key, p.message) for p in problems] == [
        (6, "sources[1].dbname", "missing required key")
    ]


def test_unknown_source_type_points_at_type(tmp_path: Path) -> None:
    path = write(tmp_path, '[[sources]]\nname = "x"\ntype = "ftp"\n')

    (problem,) = check_config_file(path)

    assert (problem.line, problem.key) == (3, "sources[0].type")
    assert "unknown type 'ftp'" in problem.message


def test_problems_inside_inline_tables_and_multi_line_arrays(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[[sources]]
type = "mongodb"
name = "chat"
url = "mongodb://127.0.0.1/"
entities = [
  { name = "project", collection = "projects" },
  { name = "session", collection = "sessions", parent = "project", key = "project_id" },
  { name = "message", collection = "messages", id_feld = "_id" },
]
password = { env = "A", file = "/b" }
""",
    )

    problems = check_config_file(path)

    assert [(p.line, p.key) for p in problems] == [
        (8, "sources[0].entities[2].id_feld"),
        (10, "sources[0].password"),
    ]
    assert "exactly one of env, file or command" in problems[1].message


def test_nested_table_of_an_array_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
[[schedules]]
name = "a"
cron = "hourly"

[[schedules]]
name = "b"
cron = "daily"
[schedules.retention]
keep_daily = -1
""",
    )

    (problem,) = check_config_file(path)

    assert (problem.line, problem.key) == (9, "schedules[1].retention.keep_daily")


def test_problems_from_the_environment_name_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[repository]\ncompression_level = 3\n")

    with pytest.raises(ConfigInvalid) as raised:
        load_config(path, env={"VAULT_COMPRESSION_LEVEL": "99"}, overrides={"queue.workers": 0})

    assert raised.value.problems == [
        "$VAULT_COMPRESSION_LEVEL: repository.compression_level: "
        "Input should be less than or equal to 22",
        "command line: queue.workers: Input should be greater than or equal to 1",
    ]


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        check_config_file(tmp_path / "missing.toml")


def test_problem_without_a_line() -> None:
    assert str(Problem("$VAULT_X", None, "a.b", "bad")) == "$VAULT_X: a.b: bad"


def test_key_lines_handles_strings_comments_quoted_and_dotted_keys() -> None:
    text = '''\
# a comment with key = "value"
title = """
not = "a key"
"""
"quoted key" = 1  # trailing [comment]
a.b.c = 'literal # not a comment'
[t]
x = [1, 2,
  3]
[[arr]]
[[arr]]
y = { z = { w = 1 } }
'''

    lines = key_lines(text)

    assert lines[("title",)] == 2
    assert ("not",) not in lines
    assert lines[("quoted key",)] == 5
    assert lines[("a", "b", "c")] == 6
    assert lines[("t", "x", 2)] == 9
    assert lines[("arr", 0)] == 10
    assert lines[("arr", 1)] == 11
    assert lines[("arr", 1, "y", "z", "w")] == 12
