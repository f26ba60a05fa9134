"""A queued job's outcome reaches the configured webhook, sent by the real worker."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_a_queued_backup_notifies_success_and_failure(vault_repo: Any, tmp_path: Path,
                                                      fs: Any, hook: Any) -> None:
    url, received = hook
    config = tmp_path / "vault.toml"
    config.write_text(f'[[notifications]]\ntype = "webhook"\nname = "ops"\nurl = "{url}"\n'
                      'on = ["success", "failure"]\n')
    src = tmp_path / "src"
    fs.write_random(src / "a.bin", 200_000, seed=5)
    queued = vault_repo.json("--config", config, "backup", "--queue", src)
    assert queued.code == 0, queued.last
    job_id = queued.summary["job_id"]
    # A backup whose directory is gone by the time the worker runs it fails.
    gone = tmp_path / "gone"
    gone.mkdir()
    bad = vault_repo.json("--config", config, "backup", "--queue", gone)
    assert bad.code == 0, bad.last
    gone.rmdir()
    worker = vault_repo.popen("--config", config, "worker", stderr=subprocess.DEVNULL)
    try:
        followed = vault_repo.json("--config", config, "jobs", "follow", job_id, timeout=120)
        assert followed.code == 0, followed.last
        vault_repo.json("--config", config, "jobs", "follow", bad.summary["job_id"],
                        timeout=120)
        sent = vault_repo.events("NotificationSent")
        for _ in range(100):
            if len(sent) >= 2:
                break
            subprocess.run(["sleep", "0.1"], check=True)
            sent = vault_repo.events("NotificationSent")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    by_job = {body["job_id"]: body for body in received}
    success, failure = by_job[job_id], by_job[bad.summary["job_id"]]
    assert (success["trigger"], success["target"]) == ("success", "ops")
    assert success["title"] == f"backup of {src} completed"
    assert success["details"]["bytes_raw"] == 200_000
    assert failure["trigger"] == "failure"
    assert failure["details"]["error_kind"] == "UsageError"
    assert str(gone) in failure["details"]["error"]
    assert [e["payload"]["trigger"] for e in sent] == ["success", "failure"]


def test_a_prune_job_is_told_as_done_or_failed(tmp_path: Path) -> None:
    """The notice of a queued prune comes from its stream like any job's."""
    from vault.foundation.actor import Actor
    from vault.jobs.commands import JobCommand, PruneArgs
    from vault.jobs.notices import job_notice
    from vault.journal import Journal
    from vault.journal import events as ev

    journal = Journal(tmp_path / "journal.db", actor=Actor(user="ops", uid=1000, host="h",
                                                             ssh_client=None))
    command = JobCommand(job_id="prune-1", args=PruneArgs(), repository="/r")
    assert job_notice(command, journal.stream("prune-1")) is None  # not finished yet
    journal.append("prune-1", ev.PruneCompleted(
        job_id="prune-1", repo_id="r", snapshots=2, packs_kept=3, packs_repacked=1,
        packs_condemned=2, packs_written=1, bytes_written=10, packs_deleted=2,
        bytes_deleted=5000, bytes_freed=4990, blobs_removed=7, packs_rescued=0,
        condemned_pending=0, condemned_pending_bytes=0, duration_seconds=1.5))
    done = job_notice(command, journal.stream("prune-1"))
    assert done is not None and done.trigger == "success"
    assert done.details["bytes_freed"] == 4990 and done.title.startswith("prune of")
    journal.append("prune-2", ev.PruneFailed(job_id="prune-2", error_kind="RepositoryLocked",
                                             message="locked by backup"))
    failed = job_notice(command.model_copy(update={"job_id": "prune-2"}),
                        journal.stream("prune-2"))
    assert failed is not None and failed.trigger == "failure"
    assert failed.details["error"] == "locked by backup"
    journal.close()
