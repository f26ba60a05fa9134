"""Helpers of the restore browser's tests: driving the tree with keys, reading the panels,
and the CLI's own dry run to compare the preview with."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Static
from textual.widgets.tree import TreeNode
from tui_helpers import wait_for

from vault_tui.data.restore_tree import TreeEntry
from vault_tui.screens.restore import RestoreScreen
from vault_tui.widgets_restore import MARKED, RestoreTree

CHAT_SCHEMA = """
CREATE TABLE projects (id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT,
                       project_id INTEGER REFERENCES projects(id), started TEXT);
CREATE TABLE messages (id INTEGER PRIMARY KEY, session_id INTEGER REFERENCES sessions(id),
                       body, sent REAL);
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
"""
CHAT_TABLES = ("projects", "sessions", "messages", "users")
CHAT_ENTITIES = """
[[sources.entities]]
name = "project"
collection = "projects"

[[sources.entities]]
name = "session"
collection = "sessions"
parent = "project"
key = "project_id"
date_field = "started"

[[sources.entities]]
name = "message"
collection = "messages"
parent = "session"
key = "session_id"
"""
# project p has the sessions s with 1 + s % 3 == p; session s the messages m with m % 9 == s
PROJECT_2_SESSIONS = [1, 4, 7]


def make_chat(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(CHAT_SCHEMA)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO projects VALUES (?, ?)", [(i, f"p{i}") for i in (1, 2, 3)])
    conn.executemany("INSERT INTO sessions VALUES (?, ?, ?)",
                     [(i, 1 + i % 3, f"2026-11-{10 + i:02d}") for i in range(9)])
    bodies: list[Any] = ["text", 7, 2.5, b"\x00\xff", None]  # every storage class
    conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)",
                     [(i, i % 9, bodies[i % 5], i / 3) for i in range(90)])
    conn.execute("INSERT INTO users VALUES (1, 'ann')")
    conn.execute("COMMIT")
    conn.close()


def chat_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, each value with its storage class, in key order."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = {}
        for table in CHAT_TABLES:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            typed = ", ".join(f"typeof({c}), {c}" for c in columns)
            found[table] = conn.execute(f"SELECT {typed} FROM {table} ORDER BY 2").fetchall()
        return found
    finally:
        conn.close()


def file_state(root: Path) -> dict[str, tuple[str, int, bytes, int]]:
    """Relative path -> (type, mode, content, mtime_ns) of everything under `root`."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            st = full.lstat()
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
            content = full.read_bytes() if kind == "file" else b""
            found[str(full.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode), content,
                                                  st.st_mtime_ns if kind == "file" else 0)
    return found


# --- the screen ---------------------------------------------------------------------------


def screen(app: Any) -> RestoreScreen:
    assert isinstance(app.screen, RestoreScreen), app.screen
    return app.screen


def tree(app: Any) -> RestoreTree:
    return screen(app).query_one(RestoreTree)


def label(node: TreeNode[TreeEntry]) -> str:
    return str(node.label).removeprefix(MARKED)


def find(app: Any, text: str) -> TreeNode[TreeEntry] | None:
    """The first node (depth first, in order) whose label starts with `text`."""
    pending = [tree(app).root]
    while pending:
        node = pending.pop(0)
        if label(node).startswith(text):
            return node
        pending[:0] = list(node.children)
    return None


def children(node: TreeNode[TreeEntry]) -> list[str]:
    return [label(child) for child in node.children]


def is_marked(node: TreeNode[TreeEntry]) -> bool:
    return str(node.label).startswith(MARKED)


async def open_restore(app: Any, pilot: Any) -> None:
    """Key 3, then wait for the newest snapshot's tree."""
    await pilot.press("3")
    await wait_for(lambda: isinstance(app.screen, RestoreScreen)
                   and screen(app).browser is not None, pilot)


async def cursor_to(app: Any, pilot: Any, text: str) -> TreeNode[TreeEntry]:
    """Walk the cursor with the arrow keys to the node labelled `text`."""
    await wait_for(lambda: find(app, text) is not None, pilot)
    node = find(app, text)
    assert node is not None
    the_tree = tree(app)
    the_tree.focus()
    while the_tree.cursor_node is not node:
        await pilot.press("down" if the_tree.cursor_line < node.line else "up")
    return node


async def expand(app: Any, pilot: Any, text: str) -> list[str]:
    """Enter on the node: its children are read then; returns their labels."""
    node = await cursor_to(app, pilot, text)
    assert not node.is_expanded
    await pilot.press("enter")
    await wait_for(lambda: bool(node.children) and not label(node.children[0]).startswith(
        "reading"), pilot)
    return children(node)


async def mark(app: Any, pilot: Any, text: str) -> None:
    node = await cursor_to(app, pilot, text)
    await pilot.press("space")
    await wait_for(lambda: is_marked(node), pilot)


def rows(app: Any, table_id: str) -> list[list[str]]:
    table = screen(app).query_one(f"#{table_id}", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def text_of(app: Any, widget_id: str) -> str:
    return str(screen(app).query_one(f"#{widget_id}", Static).render())


async def preview(app: Any, pilot: Any) -> dict[str, Any]:
    """Key p; the plan shown once it is there."""
    screen(app).preview_shown = None
    await pilot.press("p")
    await wait_for(lambda: screen(app).preview_shown is not None, pilot)
    shown = screen(app).preview_shown
    assert shown is not None
    return shown.plan


def cli_plan(vault: Any, *args: Any) -> dict[str, Any]:
    """`vault restore ARGS --dry-run --json`'s plan, without its items."""
    result = vault.json("restore", *args, "--dry-run")
    assert result.code == 0, (result.last, result.stderr)
    plan = dict(result.summary["plan"])
    plan.pop("items", None)
    return plan
