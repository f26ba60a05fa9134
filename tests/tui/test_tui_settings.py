"""The Settings screen over a real repository: what `vault stats` and `vault key list`
say, a key added through a masked form that then unlocks the repository, and a test
notice sent to real webhook servers with each target's result."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static
from tui_helpers import LARGE, SMALL, wait_for

from vault.foundation.units import human_bytes
from vault_tui.screens.modals import ErrorModal, PassphraseModal
from vault_tui.screens.settings import NewKeyModal, SettingsScreen


@dataclass
class Hook:
    """A webhook endpoint on loopback answering every POST with `status`."""

    status: int
    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def hooks() -> Iterator[Callable[[int], Hook]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(status: int) -> Hook:
        hook = Hook(status)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.bodies.append(json.loads(body))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        servers.append((server, thread))
        return hook

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(5)


def cells(app: Any, table_id: str) -> list[list[str]]:
    table = app.screen.query_one(table_id, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def text(app: Any, widget_id: str) -> str:
    return str(app.screen.query_one(widget_id, Static).render())


async def open_settings(app: Any, pilot: Any) -> None:
    await pilot.press("6")
    await wait_for(lambda: isinstance(app.screen, SettingsScreen)
                   and bool(cells(app, "#keys")), pilot)


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_settings_show_the_repository_its_stats_and_keys(
        vault_repo: Any, files_source: Path, make_app: Any, size: tuple[int, int]) -> None:
    vault_repo.backup()
    stats = vault_repo.query("stats").summary
    [key] = vault_repo.query("key", "list").summary["keys"]
    [init] = vault_repo.events("RepositoryInitialized")
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await open_settings(app, pilot)
        repository = text(app, "#repository")
        assert f"location: {vault_repo.env.repo}" in repository
        assert f"id:       {init['payload']['repo_id']}" in repository
        assert "1 snapshot(s)" in repository
        storage = text(app, "#storage")
        assert f"stored:  {human_bytes(stats['stored_bytes'])} in {stats['packs']} packs" \
            in storage
        assert f"dedup {stats['dedup_ratio']:.2f}x" in storage
        assert f"compression {stats['compression_ratio']:.2f}x" in storage
        assert "quota:   none" in storage
        assert cells(app, "#keys") == [["*", key["id"][:12], key["created"][:19],
                                        f"{key['user']}@{key['host']}", ""]]
        assert "none: add a [[notifications]] table" in text(app, "#no-targets")


async def test_a_key_added_in_the_form_unlocks_the_repository(
        vault_repo: Any, files_source: Path, make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_settings(app, pilot)
        await pilot.press("a")
        await wait_for(lambda: isinstance(app.screen, NewKeyModal), pilot)
        form = app.screen
        await pilot.press(*"second secret", "enter", *"second secreT", "enter", "enter")
        assert str(form.query_one("#key-error", Static).render()) == \
            "the two passphrases differ"
        assert app.screen is form and vault_repo.events("KeyAdded") == []

        form.query_one("#repeat-passphrase", Input).value = ""
        form.query_one("#repeat-passphrase", Input).focus()
        await pilot.press(*"second secret", "enter", *"laptop", "enter")
        await wait_for(lambda: len(cells(app, "#keys")) == 2, pilot)
        [added] = vault_repo.events("KeyAdded")
        assert added["payload"]["label"] == "laptop"
        assert "second secret" not in json.dumps(vault_repo.events())
        new_row = [row for row in cells(app, "#keys") if row[0] != "*"]
        assert new_row[0][1] == added["payload"]["key_id"][:12] and new_row[0][4] == "laptop"
    opened = vault_repo.run("key", "list", env={"VAULT_PASSWORD": "second secret"})
    assert opened.returncode == 0, opened.stderr
    wrong = vault_repo.run("key", "list", env={"VAULT_PASSWORD": "second secreT"})
    assert wrong.returncode != 0


async def test_a_test_notice_shows_each_targets_result(
        vault_repo: Any, files_source: Path, make_app: Any, hooks: Any) -> None:
    ok, refusing, other = hooks(200), hooks(404), hooks(200)
    config = Path(vault_repo.env.env["VAULT_CONFIG"])
    config.write_text(config.read_text() + f"""
[[notifications]]
type = "webhook"
name = "ops"
url = "{ok.url}?token=hunter2"

[[notifications]]
type = "webhook"
name = "gone"
url = "{refusing.url}"

[[notifications]]
type = "webhook"
name = "happy"
url = "{other.url}"
on = ["success"]
""")
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_settings(app, pilot)
        shown = {row[0]: row for row in cells(app, "#targets")}
        assert shown["ops"][1:] == ["webhook", "-", ok.url, "failure, partial, low_storage, "
                                    "missed"]
        assert "hunter2" not in str(cells(app, "#targets"))
        await pilot.press("t")
        await wait_for(lambda: "sending..." not in str(cells(app, "#targets")), pilot)
        results = {row[0]: row[2] for row in cells(app, "#targets")}
        assert results["ops"] == "sent (1 attempt)"
        assert results["gone"].startswith("FAILED after 1 attempt: ") and "404" in results["gone"]
        assert results["happy"] == "not sent: `on` lacks failure"
    assert [body["details"]["test"] for body in ok.bodies] == [True]
    assert other.bodies == []
    assert [e["payload"]["target"] for e in vault_repo.events("NotificationSent")] == ["ops"]
    assert [e["payload"]["target"] for e in vault_repo.events("NotificationFailed")] == ["gone"]


async def test_without_targets_a_test_notice_is_a_one_line_error(
        vault_repo: Any, files_source: Path, make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_settings(app, pilot)
        await pilot.press("t")
        await wait_for(lambda: isinstance(app.screen, ErrorModal), pilot)
        assert app.screen.message == ("test notice: no notification targets: add a "
                                      "[[notifications]] table to vault.toml")


async def test_the_passphrase_is_asked_when_none_is_configured(
        vault_repo: Any, files_source: Path, make_app: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_PASSWORD")
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("6")
        await wait_for(lambda: isinstance(app.screen, PassphraseModal), pilot)
        await pilot.press(*"not it", "enter")
        await wait_for(lambda: isinstance(app.screen, PassphraseModal) and app.screen.wrong,
                       pilot)
        await pilot.press(*vault_repo.env.password, "enter")
        await wait_for(lambda: isinstance(app.screen, SettingsScreen)
                       and len(cells(app, "#keys")) == 1, pilot)
        assert cells(app, "#keys")[0][0] == "*"
