"""`vault tui` for real: the installed script in a detached tmux session at 80x24 (as an
operator would run it over SSH), driven with send-keys and read with capture-pane. Each
test has its own tmux server (`-L`), killed afterwards."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (scripts/test.sh installs it)")

#: SGR parameters that set a colour: 30-37/90-97 and 40-47/100-107, and 38/48 (extended)
COLOUR = re.compile(r"^(3[0-7]|4[0-7]|9[0-7]|10[0-7]|38|48)$")
SGR = re.compile(r"\x1b\[([0-9;:]*)m")
#: the installed `vault` script (as tests/conftest.py's VAULT_BIN)
VAULT_BIN = Path(sys.executable).with_name("vault")


class Tmux:
    """One private tmux server running `vault tui` in a window of 80x24."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.socket = f"vault-tui-{uuid.uuid4().hex[:12]}"
        self.env = env
        self.cwd = cwd

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              env=self.env, cwd=self.cwd, capture_output=True, text=True,
                              timeout=30, check=False)

    def start(self) -> None:
        done = self.tmux("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24",
                         f"{VAULT_BIN} tui")
        assert done.returncode == 0, done.stderr

    def keys(self, *keys: str) -> None:
        done = self.tmux("send-keys", "-t", "tui", *keys)
        assert done.returncode == 0, done.stderr

    def screen(self, escapes: bool = False) -> str:
        done = self.tmux("capture-pane", "-p", "-t", "tui", *(["-e"] if escapes else []))
        return done.stdout

    def wait(self, condition: Callable[[str], bool], what: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if condition(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not on screen within {timeout}s:\n{shown}")
            time.sleep(0.1)

    def running(self) -> bool:
        return self.tmux("has-session", "-t", "tui").returncode == 0

    def kill(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def tmux(vault_repo: Any, files_source: Path) -> Iterator[Callable[..., Tmux]]:
    """A backed-up `docs` source and a way to start `vault tui` in tmux."""
    vault_repo.backup()
    started: list[Tmux] = []

    def start(**extra_env: str) -> Tmux:
        env = {**vault_repo.env.env, "TERM": "xterm-256color", **extra_env}
        env.pop("TMUX", None)  # not nested in the runner's own tmux, if any
        session = Tmux(env, vault_repo.env.root)
        started.append(session)
        session.start()
        return session

    yield start
    for session in started:
        session.kill()


def body(shown: str) -> str:
    """The screen without its last line (the footer lists every screen's name)."""
    return "\n".join(shown.splitlines()[:-1])


def test_vault_tui_in_tmux_shows_the_dashboard_switches_screens_and_quits(
        tmux: Callable[..., Tmux], vault_repo: Any) -> None:
    session = tmux()
    shown = session.wait(lambda s: "docs" in s and "completed" in s, "the docs backup")
    lines = shown.splitlines()
    assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
    assert "Sources" in shown and "Running jobs" in shown

    session.keys("2")
    session.wait(lambda s: "source/paths" in s and "Running jobs" not in s, "History")
    session.keys("4")
    session.wait(lambda s: "Schedules" in body(s) and "No schedules" in s, "Schedules")
    session.keys("6")
    # A long temporary path wraps at 80 columns: compare without the white space; the
    # titles come first, the figures once the screen's load (a thread) is done.
    session.wait(lambda s: f"location:{vault_repo.env.repo}" in re.sub(r"\s+", "", s)
                 and "Keys" in s, "Settings with its figures")

    # The command palette finds a screen by name; Enter goes there.
    session.keys("C-p")
    session.wait(lambda s: "Go to Dashboard" in s, "the command palette")
    session.keys("-l", "journal")
    session.wait(lambda s: "Go to Journal" in s and "Go to Dashboard" not in s,
                 "the palette filtered")
    session.keys("Enter")
    session.wait(lambda s: "hash chain" in s and "Go to Journal" not in s,
                 "the Journal screen")
    session.keys("1")
    session.wait(lambda s: "Sources" in s and "docs" in s, "back on the dashboard")

    session.keys("q")
    deadline = time.monotonic() + 15
    while session.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not session.running(), "vault tui did not quit on q"


def test_no_color_leaves_only_plain_attributes(tmux: Callable[..., Tmux]) -> None:
    session = tmux(NO_COLOR="1")
    session.wait(lambda s: "docs" in s and "completed" in s, "the docs backup")
    session.keys("6")
    session.wait(lambda s: "Repository" in s and "Keys" in s, "Settings")
    painted = session.screen(escapes=True)
    codes = [code for params in SGR.findall(painted)
             for code in re.split(r"[;:]", params) if code]
    assert codes, "capture-pane -e showed no attributes at all"
    colours = sorted({c for c in codes if COLOUR.match(c)})
    assert colours == [], f"colour codes with NO_COLOR=1: {colours}"
    assert "\x1b[" in painted and "Repository" in SGR.sub("", painted)


def test_the_same_screen_has_colours_without_no_color(tmux: Callable[..., Tmux]) -> None:
    """The check above can fail: without NO_COLOR the capture carries colour codes."""
    session = tmux()
    session.wait(lambda s: "docs" in s and "completed" in s, "the docs backup")
    painted = session.screen(escapes=True)
    codes = {code for params in SGR.findall(painted) for code in re.split(r"[;:]", params)}
    assert any(COLOUR.match(c) for c in codes if c)
