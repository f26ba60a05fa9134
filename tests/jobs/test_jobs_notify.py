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
