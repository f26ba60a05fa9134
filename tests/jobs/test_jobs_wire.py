"""The queue carries data, never code: a pickle put on the queue never runs.

A real `vault worker` reads a queue into which the test wrote, as an attacker with write
access would, pickles whose unpickling creates a marker file: in the task queue, in the
schedule and as a job's revocation. Nothing runs, each is journaled as `JobRejected`, and
the worker goes on running real jobs. Then what the serializer accepts and refuses, on a
real SQLite queue, and the refusals of an insecure Redis queue or a shared state directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_jobs_worker import REDIS_PASSWORD, Workers, follow, queue_backup, use_redis_queue
from test_jobs_worker import redis_url as redis_url  # the fixture, for the Redis case

from vault.config.model import VaultConfig
from vault.foundation.paths import SharedWritable
from vault.jobs.commands import BackupArgs, JobCommand
from vault.jobs.queue import InsecureQueue, JobQueue, check_redis_queue, queued_events
from vault.jobs.tasks import REGISTERED_TASK
from vault.jobs.wire import JOB_FORMAT, Rejection
from vault.jobs.worker import requeue_lost
from vault.journal import Journal

PARTS = ("queue", "schedule", "revocation")


class _Touch:
    """Unpickling this creates `marker`: what an attacker's message would make happen."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        return (Path.touch, (self.marker,))


def live_pickle(marker: Path, control: Path) -> bytes:
    """A pickle that creates `marker` when loaded; shown to work by loading a copy of it
    aimed at `control` here, so a marker that stays absent means it was never loaded."""
    pickle.loads(pickle.dumps(_Touch(control)))  # the one load here: the control
    assert control.exists()
    return pickle.dumps(_Touch(marker))


@pytest.fixture
def workers(vault_repo: Any, tmp_path: Path) -> Iterator[Workers]:
    logs = tmp_path / "logs"
    logs.mkdir()
    started = Workers(vault_repo, logs)
    yield started
    started.stop_all()


def _inject_sqlite(vault: Any, payloads: dict[str, bytes], job_id: str) -> None:
    with sqlite3.connect(vault.env.state_dir / "queue.db") as db:  # huey's own tables
        db.execute("INSERT INTO task (queue, data, priority) VALUES ('vault', ?, 100)",
                   (payloads["queue"],))  # ahead of the real job
        db.execute("INSERT INTO schedule (queue, data, timestamp) VALUES ('vault', ?, 0)",
                   (payloads["schedule"],))  # due long ago
        db.execute("INSERT INTO kv (queue, key, value) VALUES ('vault', ?, ?)",
                   (f"r:{job_id}", payloads["revocation"]))  # where a cancel revokes it


def _inject_redis(url: str, payloads: dict[str, bytes], job_id: str) -> None:
    import redis

    server = redis.Redis.from_url(url, password=REDIS_PASSWORD)
    server.rpush("huey.redis.vault", payloads["queue"])  # the next one a worker pops
    server.zadd("huey.schedule.vault", {payloads["schedule"]: 0})
    server.hset("huey.results.vault", f"r:{job_id}", payloads["revocation"])
    server.close()


def _rejections(vault: Any, count: int, workers: Workers) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 90
    while len(found := vault.events("JobRejected")) < count:
        assert time.monotonic() < deadline, (found, workers.logs())
        time.sleep(0.2)
    return found


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_pickle_on_the_queue_never_runs_and_is_journaled(
        backend: str, vault_repo: Any, workers: Workers, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        use_redis_queue(vault_repo, url)
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.txt").write_text("kept\n")
    job_id = queue_backup(vault_repo, src)  # a real job, waiting on the queue
    markers = {part: tmp_path / f"ran-from-{part}" for part in PARTS}
    payloads = {part: live_pickle(markers[part], tmp_path / f"control-{part}")
                for part in PARTS}
    if backend == "redis":
        _inject_redis(url, payloads, job_id)
    else:
        _inject_sqlite(vault_repo, payloads, job_id)

    workers.start()
    assert follow(vault_repo, job_id, workers)["event"] == "BackupCompleted"
    rejected = _rejections(vault_repo, len(PARTS), workers)
    assert not [m for m in markers.values() if m.exists()], workers.logs()
    by_part = {e["payload"]["found_in"]: e for e in rejected}
    assert sorted(by_part) == sorted(PARTS) and len(rejected) == len(PARTS)
    for part, event in by_part.items():
        payload = event["payload"]
        assert event["stream_id"] == "queue"
        assert payload["reason"].startswith("a pickle"), payload
        assert payload["size_bytes"] == len(payloads[part])
        assert payload["sha256"] == hashlib.sha256(payloads[part]).hexdigest()
        assert payload["queue"].startswith("redis://127.0.0.1:" if backend == "redis"
                                           else "sqlite:///")

    # the worker goes on: the next job runs, and the journal shows what was dropped
    second = queue_backup(vault_repo, src, "--tag", "after")
    assert follow(vault_repo, second, workers)["event"] == "BackupCompleted"
    shown = vault_repo.ok("journal", "--type", "JobRejected")
    assert shown.stdout.count("JobRejected") == len(PARTS)
    assert not [m for m in markers.values() if m.exists()]


def test_a_well_formed_message_the_journal_never_queued_does_not_run(
        vault_repo: Any, workers: Workers, tmp_path: Path) -> None:
    """JSON in the right shape is still only a claim: a made-up job, and a copy of a real
    job's message that names other paths, are refused; the real job runs as queued."""
    src, other = tmp_path / "src", tmp_path / "not-asked-for"
    for directory in (src, other):
        directory.mkdir()
        (directory / "f.txt").write_text(directory.name)
    job_id = queue_backup(vault_repo, src)
    [queued] = [e["payload"]["command"] for e in vault_repo.events("JobQueued")]
    tampered = {**queued, "args": {**queued["args"], "paths": [str(other)]}}
    made_up = {**tampered, "job_id": "backup-made-up"}
    forged = [_message(tampered), _message(made_up)]
    with sqlite3.connect(vault_repo.env.state_dir / "queue.db") as db:
        for raw in forged:  # both ahead of the real message
            db.execute("INSERT INTO task (queue, data, priority) VALUES ('vault', ?, 100)",
                       (raw,))

    workers.start()
    assert follow(vault_repo, job_id, workers)["event"] == "BackupCompleted"
    rejected = {e["payload"]["sha256"]: e["payload"]["reason"]
                for e in _rejections(vault_repo, 2, workers)}
    assert rejected == {
        hashlib.sha256(forged[0]).hexdigest(): f"job {job_id}: not the command its "
                                               "JobQueued holds",
        hashlib.sha256(forged[1]).hexdigest(): "job backup-made-up (attempt 1) was never "
                                               "queued"}
    snapshots = vault_repo.query("snapshots").summary["snapshots"]
    assert [(s["job_id"], s["paths"]) for s in snapshots] == [(job_id, [str(src)])]
    assert [j["job_id"] for j in vault_repo.query("jobs").summary["jobs"]] == [job_id]


# --- the serializer on a real SQLite queue --------------------------------------------


def _sqlite_queue(tmp_path: Path, seen: list[Rejection]) -> JobQueue:
    config = VaultConfig.model_validate({"state_dir": str(tmp_path / "state")})
    queue = JobQueue.from_config(config)
    queue.huey.on_rejected = seen.append
    return queue


def _command(job_id: str) -> JobCommand:
    return JobCommand(job_id=job_id, args=BackupArgs(paths=["/srv/a"], tags=["t"]),
                      repository="/srv/repo", overrides={"backup.one_file_system": True})


def _raw_rows(tmp_path: Path, table: str) -> list[bytes]:
    with sqlite3.connect(tmp_path / "state" / "queue.db") as db:
        return [bytes(r[0]) for r in db.execute(f"SELECT data FROM {table}")]


def test_a_job_crosses_the_queue_as_json_and_comes_back_equal(tmp_path: Path) -> None:
    seen: list[Rejection] = []
    queue = _sqlite_queue(tmp_path, seen)
    command = _command("backup-0001")
    queue.enqueue(command)
    [raw] = _raw_rows(tmp_path, "task")
    assert json.loads(raw) == {"format": JOB_FORMAT, "id": "backup-0001", "eta": None,
                               "command": command.model_dump(mode="json")}
    assert queue.waiting_ids() == {"backup-0001"}
    task = queue.huey.dequeue()
    assert task.id == "backup-0001" and task.kwargs == {}
    assert JobCommand.model_validate(task.args[0]) == command
    assert queue.huey.dequeue() is None and seen == []


def _message(command: dict[str, Any], **changes: Any) -> bytes:
    wire = {"format": JOB_FORMAT, "id": command["job_id"], "eta": None, "command": command}
    return json.dumps({**wire, **changes}).encode()


BAD_MESSAGES = {
    "not JSON": (b"\x00\x01garbage", "not a vault job message"),
    "old pickle protocol": (pickle.dumps({"a": 1}, protocol=0), "not a vault job message"),
    "another format": (b'{"format": "huey/1", "id": "x"}', "format"),
    "extra field": (_message(_command("j").model_dump(mode="json"), name="os.system"),
                    "name: Extra inputs"),
    "id is not the job": (_message(_command("j").model_dump(mode="json"), id="other"),
                          "not its command's job id"),
    "a secret": (_message({**_command("j").model_dump(mode="json"),
                           "overrides": {"repository.password": "x"}}), "secrets"),
    "unknown job kind": (_message({**_command("j").model_dump(mode="json"),
                                   "args": {"kind": "shell", "cmd": "id"}}), "args"),
}


@pytest.mark.parametrize("name", BAD_MESSAGES)
def test_a_message_vault_did_not_write_is_dropped_once_with_its_reason(
        name: str, tmp_path: Path) -> None:
    raw, why = BAD_MESSAGES[name]
    seen: list[Rejection] = []
    queue = _sqlite_queue(tmp_path, seen)
    queue.enqueue(_command("good"))
    with sqlite3.connect(tmp_path / "state" / "queue.db") as db:
        db.execute("INSERT INTO task (queue, data, priority) VALUES ('vault', ?, 9)", (raw,))
    assert queue.waiting_ids() == {"good"} and seen == []  # a look journals nothing
    # dropped (not raised into the consumer), and the job behind it taken at once
    assert queue.huey.dequeue().id == "good"
    [rejection] = seen
    assert (rejection.where, rejection.size_bytes) == ("queue", len(raw))
    assert rejection.sha256 == hashlib.sha256(raw).hexdigest() and why in rejection.reason
    assert queue.huey.dequeue() is None and _raw_rows(tmp_path, "task") == []
    assert len(seen) == 1  # journaled once


def test_a_cancel_revokes_as_json_and_a_forged_revocation_is_dropped(tmp_path: Path) -> None:
    seen: list[Rejection] = []
    queue = _sqlite_queue(tmp_path, seen)
    queue.enqueue(_command("first"))
    queue.huey.revoke_by_id("first", revoke_once=True)
    with sqlite3.connect(tmp_path / "state" / "queue.db") as db:
        [(value,)] = db.execute("SELECT value FROM kv WHERE key = 'r:first'").fetchall()
        assert json.loads(value) == {"format": "vault-revocation/1", "once": True,
                                     "until": None}
    task = queue.huey.dequeue()
    assert queue.huey.is_revoked(task) is True and seen == []
    with sqlite3.connect(tmp_path / "state" / "queue.db") as db:
        db.execute("UPDATE kv SET value = ? WHERE key = 'r:first'", (pickle.dumps(None),))
    assert queue.huey.is_revoked(task) is False  # the journal decides (claim) instead
    assert [r.where for r in seen] == ["revocation"]
    with sqlite3.connect(tmp_path / "state" / "queue.db") as db:
        assert db.execute("SELECT count(*) FROM kv").fetchone() == (0,)


def test_an_older_vaults_pickled_message_is_rejected_and_its_job_queued_again(
        tmp_path: Path) -> None:
    """Upgrading: the message an older vault pickled is dropped unread; the job, still
    `queued` in the journal, goes back on the queue as JSON (`requeue_lost`) and runs."""
    from huey.registry import Message
    from huey.serializer import Serializer

    seen: list[Rejection] = []
    queue = _sqlite_queue(tmp_path, seen)
    command = _command("backup-old")
    with Journal(tmp_path / "journal.db") as journal:
        journal.append_many(queued_events(command))
        old = Serializer().serialize(Message(  # what the older vault put on the queue
            id="backup-old", name=REGISTERED_TASK, retries=0, retry_delay=0, kwargs={},
            args=(command.model_dump(mode="json"),), retry_backoff=0))
        with sqlite3.connect(tmp_path / "state" / "queue.db") as db:
            db.execute("INSERT INTO task (queue, data) VALUES ('vault', ?)", (old,))
        assert queue.waiting_ids() == set()  # not readable, so not waiting
        assert queue.huey.dequeue() is None
        assert [(r.where, r.reason.split(" (")[0]) for r in seen] == [("queue", "a pickle")]
        assert requeue_lost(journal, queue, lost_after=0) == ["backup-old"]
    task = queue.huey.dequeue()
    assert task.id == "backup-old" and JobCommand.model_validate(task.args[0]) == command
    assert len(seen) == 1


# --- refusals: an insecure Redis queue, a shared state directory -------------------------


@pytest.mark.parametrize(("url", "password", "problem"), [
    ("redis://127.0.0.1:6379/0", False, "has no password: set [queue] password"),
    ("rediss://queue.example:6380/0", False, "has no password"),
    ("redis://queue.example:6379/0", True, "must use TLS (rediss://)"),
    ("redis://10.1.2.3:6379/0", True, "must use TLS"),
])
def test_an_insecure_redis_queue_is_refused(url: str, password: bool, problem: str) -> None:
    with pytest.raises(InsecureQueue) as refused:
        check_redis_queue(url, has_password=password)
    assert problem in refused.value.message and refused.value.exit_code == 2
    assert url.split("//")[1].split("/")[0] in refused.value.message


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://[::1]:6379/0",
                                 "redis://localhost/0", "redis://vault@127.0.0.1/0",
                                 "rediss://queue.example:6380/0"])
def test_a_redis_queue_with_a_password_on_loopback_or_tls_is_accepted(url: str) -> None:
    check_redis_queue(url, has_password=True)


def test_the_cli_refuses_a_redis_queue_without_a_password(vault_repo: Any) -> None:
    done = vault_repo.run("worker", env={"VAULT_QUEUE__URL": "redis://127.0.0.1:1/0"})
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "redis://127.0.0.1:1/0 has no password: set [queue] password" in line


def _journal_rows(path: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT seq, type, hash FROM events ORDER BY seq").fetchall()


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_a_group_or_world_writable_state_dir_is_refused(vault_repo: Any, tmp_path: Path,
                                                        mode: int) -> None:
    state = vault_repo.env.state_dir
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    vault_repo.backup(src)
    before = _journal_rows(vault_repo.env.journal_path)
    state.chmod(mode)
    for command in (["backup", src], ["backup", "--queue", src], ["worker"], ["jobs"]):
        done = vault_repo.run(*command, timeout=60)
        assert done.returncode == 2, (command, done.stderr)
        [line] = done.stderr.strip().splitlines()
        assert f"{state} is writable by" in line and f"chmod 700 {state}" in line
    assert _journal_rows(vault_repo.env.journal_path) == before  # nothing written there
    state.chmod(0o700)
    assert vault_repo.json("jobs").code == 0


def test_a_shared_writable_queue_file_is_refused_and_a_new_one_is_private(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    queue = _sqlite_queue(tmp_path, [])
    path = state / "queue.db"
    assert (os.stat(state).st_mode & 0o777, os.stat(path).st_mode & 0o777) == (0o700, 0o600)
    queue.enqueue(_command("x"))
    path.chmod(0o666)
    with pytest.raises(SharedWritable) as refused:
        _sqlite_queue(tmp_path, [])
    assert f"chmod 600 {path}" in refused.value.message and refused.value.exit_code == 2
