"""Which targets a notice reaches (`on` and `only`), and that no secret ever reaches the
journal or the CLI's output, whatever happens to the delivery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from notify_servers import SMTP_PASSWORD, SMTP_USER

from vault.journal import Journal
from vault.notify import Notice, notify, select_targets

TOKEN = "tok-Hq4Lz8RwY2"
SIGNING = "sig-Nc3Jv7TpE5"
WRONG_PASSWORD = "wrong-pw-Kd6Fs1Mx"


def hook(name: str, url: str, on: list[str]) -> dict[str, Any]:
    return {"type": "webhook", "name": name, "url": url, "on": on}


def notice(trigger: Any, job_id: str | None = None) -> Notice:
    return Notice(trigger=trigger, title=f"{trigger} notice", details={"n": 1}, job_id=job_id)


def test_on_and_only_pick_the_targets(webhook_server, make_config, journal: Journal) -> None:
    servers = {name: webhook_server() for name in ("fail", "all", "storage")}
    config = make_config(
        hook("fail", servers["fail"].url, ["failure"]),
        hook("all", servers["all"].url, ["success", "failure", "partial", "low_storage",
                                          "missed"]),
        hook("storage", servers["storage"].url, ["low_storage"]),
    )

    def reached(trigger: str, only: list[str] | None = None) -> list[str]:
        before = {name: len(s.requests) for name, s in servers.items()}
        deliveries = notify(config, journal, notice(trigger), only=only)
        hit = sorted(name for name, s in servers.items() if len(s.requests) > before[name])
        assert sorted(d.name for d in deliveries) == hit
        assert all(d.ok for d in deliveries)
        return hit

    assert reached("failure") == ["all", "fail"]
    assert reached("low_storage") == ["all", "storage"]
    assert reached("success") == ["all"]
    assert reached("failure", only=["fail"]) == ["fail"]
    assert reached("failure", only=["storage"]) == []  # named, but not on failure
    assert reached("missed", only=["all", "storage"]) == ["all"]
    assert reached("failure", only=[]) == []  # a schedule that notifies nobody
    assert reached("failure", only=["no-such-target"]) == []
    stream = [e.payload["target"] for e in journal.read(types=["NotificationSent"])]
    assert sorted(stream) == ["all", "all", "all", "all", "fail", "fail", "storage"]
    assert {e.stream_id for e in journal.read(types=["NotificationSent"])} == {"notifications"}


def test_select_targets_is_pure_and_keeps_config_order(make_config) -> None:
    config = make_config(hook("b", "http://h/b", ["failure"]), hook("a", "http://h/a",
                                                                     ["failure"]))
    assert [t.name for t in select_targets(config.notifications, "failure", None)] == ["b", "a"]
    assert [t.name for t in select_targets(config.notifications, "failure", ["a"])] == ["a"]
    assert select_targets(config.notifications, "partial", None) == []


def test_the_default_on_list(make_config) -> None:
    [target] = make_config({"type": "webhook", "name": "w", "url": "http://h/x"}).notifications
    assert target.on == ["failure", "partial", "low_storage", "missed"]


def test_targets_are_served_in_parallel_and_reported_in_config_order(
    webhook_server, make_config, journal: Journal
) -> None:
    slow = webhook_server([500, 500])  # ~2 s of backoff before its 3rd attempt
    fast = webhook_server()
    config = make_config(hook("slow", slow.url, ["failure"]), hook("fast", fast.url,
                                                                   ["failure"]))

    deliveries = notify(config, journal, notice("failure", job_id="backup-1"))

    assert [(d.name, d.ok, d.attempts) for d in deliveries] == [("slow", True, 3),
                                                                ("fast", True, 1)]
    assert [e.payload["target"] for e in journal.stream("backup-1")] == ["slow", "fast"]


def _leaks(data: bytes) -> list[str]:
    return [s for s in (TOKEN, SIGNING, SMTP_PASSWORD, WRONG_PASSWORD)
            if s.encode() in data or s.encode("utf-16-le") in data]


def test_secrets_never_reach_the_journal_or_the_cli_output(
    vault, webhook_server, smtp_server, tls, tmp_path: Path
) -> None:
    ok_hook, bad_hook = webhook_server(), webhook_server([401])
    good_smtp, bad_smtp = smtp_server("starttls"), smtp_server("starttls")
    password_file = tmp_path / "smtp.pass"
    password_file.write_text(SMTP_PASSWORD + "\n")
    password_file.chmod(0o600)
    wrong_file = tmp_path / "wrong.pass"
    wrong_file.write_text(WRONG_PASSWORD)
    wrong_file.chmod(0o600)
    secret_refs = 'token = { env = "T_TOKEN" }\nsigning_secret = { env = "T_SIGNING" }'

    def mail(name: str, port: int, password: Path) -> str:
        return (f'[[notifications]]\ntype = "email"\nname = "{name}"\nsmtp_host = "localhost"\n'
                f'smtp_port = {port}\nusername = "{SMTP_USER}"\n'
                f'password = {{ file = "{password}" }}\nca_file = "{tls.ca_file}"\n'
                'sender = "vault@example.com"\nrecipients = ["ops@example.com"]\n')

    config = tmp_path / "vault.toml"
    config.write_text(
        f'[[notifications]]\ntype = "webhook"\nname = "ok-hook"\nurl = "{ok_hook.url}"\n'
        f"{secret_refs}\n"
        f'[[notifications]]\ntype = "webhook"\nname = "bad-hook"\nurl = "{bad_hook.url}"\n'
        f"{secret_refs}\n"
        + mail("good-mail", good_smtp.port, password_file)
        + mail("bad-mail", bad_smtp.port, wrong_file)
    )
    env = {"VAULT_CONFIG": str(config), "T_TOKEN": TOKEN, "T_SIGNING": SIGNING}

    result = vault.json("notify", "test", env=env)
    human = vault.run("notify", "test", "--trigger", "missed", env=env)
    journal_out = vault.run("journal", "--json", env=env)

    assert result.code == 1 and human.returncode == 1
    outcome = {r["name"]: r["ok"] for r in result.records if r["type"] == "delivery"}
    assert outcome == {"ok-hook": True, "bad-hook": False, "good-mail": True, "bad-mail": False}
    assert ok_hook.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"  # it was used
    assert bad_smtp.logins and good_smtp.messages  # so was each password
    for text in (result.stdout, result.stderr, human.stdout, human.stderr, journal_out.stdout):
        assert not _leaks(text.encode()), text
    journal_files = list(vault.env.journal_path.parent.glob("journal.db*"))
    assert journal_files
    for path in journal_files:
        assert not _leaks(path.read_bytes()), f"{path} holds a secret"
    failed = [json.loads(line) for line in journal_out.stdout.splitlines()][-1]["events"]
    assert {e["payload"]["target"] for e in failed if e["type"] == "NotificationFailed"} == {
        "bad-hook", "bad-mail"}


def test_an_unreadable_secret_fails_that_target_only(
    webhook_server, make_config, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    good = webhook_server()
    config = make_config(
        {**hook("broken", good.url, ["failure"]), "token": {"env": "NOT_SET_TOKEN"}},
        hook("good", good.url, ["failure"]),
    )

    broken, fine = notify(config, journal, notice("failure"))

    assert (broken.ok, broken.attempts) == (False, 0)
    assert broken.error == ("cannot read the token of notification 'broken':"
                            " environment variable NOT_SET_TOKEN is not set")
    assert fine.ok and len(good.requests) == 1


def test_a_broken_journal_does_not_make_notify_raise(
    webhook_server, make_config, tmp_path: Path
) -> None:
    server = webhook_server()
    journal = Journal(tmp_path / "journal.db")
    journal.close()  # every append now fails

    [delivery] = notify(make_config(hook("w", server.url, ["failure"])), journal,
                        notice("failure"))

    assert delivery.ok and len(server.requests) == 1

