"""`vault notify test` end to end: the installed command, a config file, real servers."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest


@pytest.fixture
def config_with(vault, tmp_path: Path):
    """Write vault.toml with these [[notifications]] tables and point VAULT_CONFIG at it."""

    def write(*tables: str) -> Path:
        path = tmp_path / "vault.toml"
        path.write_text("\n".join(f"[[notifications]]\n{t}" for t in tables))
        vault.env.env["VAULT_CONFIG"] = str(path)
        return path

    return write


def webhook(name: str, url: str, extra: str = "") -> str:
    return f'type = "webhook"\nname = "{name}"\nurl = "{url}"\n{extra}\n'


def test_sends_a_test_notice_to_every_target_on_failure(
    vault, config_with, webhook_server
) -> None:
    first, second, success_only = webhook_server(), webhook_server(), webhook_server()
    config_with(webhook("first", first.url), webhook("second", second.url),
                webhook("success-only", success_only.url, 'on = ["success"]'))

    done = vault.ok("notify", "test")

    assert done.stdout.splitlines() == ["first (webhook): sent (1 attempt)",
                                        "second (webhook): sent (1 attempt)"]
    body = json.loads(first.requests[0].body)
    assert body["trigger"] == "failure" and body["job_id"] is None
    assert body["title"] == f"test notice from vault on {socket.gethostname()}"
    assert body["details"] == {"test": True, "note": "sent by `vault notify test`; no job ran"}
    assert len(second.requests) == 1 and success_only.requests == []
    events = vault.events("NotificationSent")
    assert [(e["stream_id"], e["payload"]["target"]) for e in events] == [
        ("notifications", "first"), ("notifications", "second")]


def test_json_output_has_one_record_per_delivery(vault, config_with, webhook_server) -> None:
    good, bad = webhook_server(), webhook_server([404])
    config_with(webhook("good", good.url, 'on = ["success"]'),
                webhook("bad", bad.url, 'on = ["success"]'))

    result = vault.json("notify", "test", "--trigger", "success")

    assert result.code == 1
    port = bad.url.split(":")[2].split("/")[0]
    assert result.records == [
        {"type": "delivery", "command": "notify test", "name": "good", "channel": "webhook",
         "ok": True, "error": None, "attempts": 1},
        {"type": "delivery", "command": "notify test", "name": "bad", "channel": "webhook",
         "ok": False, "error": f"http://127.0.0.1:{port}: HTTP 404 Not Found", "attempts": 1},
        {"type": "summary", "command": "notify test", "ok": False, "trigger": "success",
         "sent": 1, "failed": 1},
    ]
    assert json.loads(good.requests[0].body)["trigger"] == "success"
    failed = vault.events("NotificationFailed")
    assert [e["payload"]["error"] for e in failed] == [
        f"http://127.0.0.1:{port}: HTTP 404 Not Found"]


def test_target_picks_one_and_a_failure_exits_1(vault, config_with, webhook_server) -> None:
    picked, other = webhook_server([500, 500, 500]), webhook_server()
    config_with(webhook("picked", picked.url), webhook("other", other.url))

    done = vault.run("notify", "test", "--target", "picked")

    assert done.returncode == 1
    port = picked.url.split(":")[2].split("/")[0]
    assert done.stdout == (f"picked (webhook): FAILED after 3 attempts: "
                           f"http://127.0.0.1:{port}: HTTP 500 Internal Server Error\n")
    assert len(picked.requests) == 3 and other.requests == []


@pytest.mark.parametrize(("args", "tables", "message"), [
    (["--target", "nope"], [webhook("a", "http://127.0.0.1:9/x")],
     "no notification target named 'nope' (configured: a)"),
    ([], [], "no notification targets: add a [[notifications]] table to vault.toml"),
    (["--trigger", "success"], [webhook("a", "http://127.0.0.1:9/x")],
     "no notification target lists 'success' in `on`; pick another --trigger"),
    (["--target", "a", "--trigger", "missed"],
     [webhook("a", "http://127.0.0.1:9/x", 'on = ["failure"]')],
     "target a: `on` does not list 'missed' (pick another --trigger, or add it to `on`)"),
])
def test_nothing_to_send_is_a_usage_error(
    vault, config_with, args: list[str], tables: list[str], message: str
) -> None:
    config_with(*tables)

    done = vault.run("notify", "test", *args)

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"vault: error: {message}\n"
    result = vault.json("notify", "test", *args)
    assert result.code == 2 and result.last["message"] == message
