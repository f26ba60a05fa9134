"""Real `vault worker` processes: SQLite and Redis queues, several workers, kill -9.

Jobs are queued with `vault backup --queue` and followed with `vault jobs follow`, as a
user would; the assertions read the repository and the journal.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vault.journal.projections.jobs import read_jobs

MiB = 1 << 20


class Workers:
    """`vault worker` processes started by a test; all stopped (SIGTERM, then SIGKILL)."""

    def __init__(self, vault: Any, log_dir: Path) -> None:
        self.vault, self.log_dir = vault, log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"worker{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = self.vault.popen("worker", "--retry-delay", "0.5", *args, stderr=log)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")
                         for p in sorted(self.log_dir.glob("worker*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(vault_repo: Any, tmp_path: Path) -> Iterator[Workers]:
    logs = tmp_path / "logs"
    logs.mkdir()
    started = Workers(vault_repo, logs)
    yield started
    started.stop_all()


def queue_backup(vault: Any, *args: Any) -> str:
    result = vault.json("backup", "--queue", *args)
    assert result.code == 0, (result.last, result.stderr)
    assert result.summary["status"] == "queued"
    return str(result.summary["job_id"])


def follow(vault: Any, job_id: str, workers: Workers, expect: int = 0) -> dict[str, Any]:
    result = vault.json("jobs", "follow", job_id, timeout=240)
    assert result.code == expect, (result.last, result.stderr, workers.logs())
    return result.summary


def job_events(vault: Any, job_id: str) -> list[dict[str, Any]]:
    result = vault.query("jobs", "show", job_id)
    assert result.code == 0, result.stderr
    return list(result.summary["events"])


def verified_and_restored(vault: Any, fs: Any, snapshot_id: str, src: Path,
                          expected: dict[str, Any], out: Path) -> None:
    """Every pack reads back whole, and the snapshot of `src` restores as `expected`."""
    verified = vault.json("verify", "--read-data")
    assert verified.code == 0 and verified.summary["ok"] is True, verified.last
    vault.restore(f"{snapshot_id}:{src}", "--target", out)
    assert fs.tree_meta(out, include_root=False) == {k: v for k, v in expected.items()
                                                      if k != "."}


def snapshots(vault: Any) -> list[dict[str, Any]]:
    return list(vault.query("snapshots").summary["snapshots"])


def test_a_worker_runs_a_queued_backup_with_progress(vault_repo: Any, workers: Workers,
                                                     fs: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(4):
        fs.write_random(src / f"r{i}.bin", 10 * MiB, seed=i)
    (src / "small.txt").write_text("small\n")
    expected = fs.tree_meta(src)
    assert vault_repo.query("status").summary["workers"] == []
    workers.start()
    job_id = queue_backup(vault_repo, src, "--tag", "from-queue")

    done = follow(vault_repo, job_id, workers)
    assert done["event"] == "BackupCompleted" and done["exit_code"] == 0
    snapshot_id = done["payload"]["snapshot_id"]
    assert [s["id"] for s in snapshots(vault_repo)] == [snapshot_id]

    events = job_events(vault_repo, job_id)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == ["BackupRequested", "JobQueued", "JobClaimed", "BackupStarted"]
    assert kinds[-1] == "BackupCompleted"
    progress = [e["payload"] for e in events if e["type"] == "BackupProgressed"]
    assert progress, kinds
    done_bytes = [p["bytes_done"] for p in progress]
    assert done_bytes == sorted(done_bytes) and done_bytes[-1] == 40 * MiB + 6
    assert [p["items_done"] for p in progress] == sorted(p["items_done"] for p in progress)

    listed = vault_repo.query("jobs").summary["jobs"]
    assert [(j["job_id"], j["status"]) for j in listed] == [(job_id, "completed")]
    out = tmp_path / "out"
    vault_repo.restore(f"{snapshot_id}:{src}", "--target", out)
    assert fs.tree_meta(out, include_root=False) == {k: v for k, v in expected.items()
                                                      if k != "."}

    # `vault status` names the running worker (its presence file), and not once it stopped
    [running] = vault_repo.query("status").summary["workers"]
    assert running["pid"] == workers.procs[0].pid and running["threads"] >= 1
    workers.procs[0].send_signal(signal.SIGTERM)
    assert workers.procs[0].wait(timeout=30) == 0, workers.logs()
    assert vault_repo.query("status").summary["workers"] == []
    status = vault_repo.run("status")
    assert "workers:    none running" in status.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: the test server's `requirepass`: vault refuses a Redis queue without a password
REDIS_PASSWORD = "redis-test-password-5d1c"


def use_redis_queue(vault: Any, url: str) -> None:
    """Point `vault` (and the workers it starts) at the Redis queue `url`, with its
    password as a secret reference in a config file, as a user would set it up."""
    config = vault.env.root / "vault.toml"
    config.write_text(f'[queue]\nurl = "{url}"\n'
                      'password = { env = "VAULT_TEST_REDIS_PASSWORD" }\n')
    vault.env.env["VAULT_CONFIG"] = str(config)
    vault.env.env["VAULT_TEST_REDIS_PASSWORD"] = REDIS_PASSWORD


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real `redis-server` on a free loopback port that asks for `REDIS_PASSWORD`."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        pytest.skip("redis-server is not installed: the Redis queue test needs a real server")
    if importlib.util.find_spec("redis") is None:
        pytest.skip("the `redis` Python client is not installed (needed by RedisHuey)")
    port = _free_port()
    data = tmp_path / "redis"
    data.mkdir()
    conf = data / "redis.conf"  # the password in a file, not in the process arguments
    conf.write_text(f"requirepass {REDIS_PASSWORD}\n")
    proc = subprocess.Popen([binary, str(conf), "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "redis did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=30)


def test_two_workers_on_redis_run_each_job_exactly_once(vault_repo: Any, workers: Workers,
                                                       redis_url: str, tmp_path: Path) -> None:
    use_redis_queue(vault_repo, redis_url)
    sources = []
    for i in range(6):
        src = tmp_path / f"src{i}"
        src.mkdir()
        (src / "data.bin").write_bytes(bytes([i]) * (256 * 1024 + i))
        sources.append(src)
    first, second = workers.start(), workers.start()
    job_ids = [queue_backup(vault_repo, src) for src in sources]

    for job_id in job_ids:
        assert follow(vault_repo, job_id, workers)["event"] == "BackupCompleted"
    by_job = {s["job_id"]: s for s in snapshots(vault_repo)}
    assert sorted(by_job) == sorted(job_ids)
    assert len(snapshots(vault_repo)) == len(job_ids)
    claimers = set()
    for job_id, src in zip(job_ids, sources, strict=True):
        kinds = [e["type"] for e in job_events(vault_repo, job_id)]
        assert kinds.count("JobClaimed") == 1 and kinds.count("BackupStarted") == 1, kinds
        assert kinds.count("BackupCompleted") == 1
        claimed = next(e for e in job_events(vault_repo, job_id) if e["type"] == "JobClaimed")
        claimers.add(claimed["payload"]["pid"])
        assert by_job[job_id]["paths"] == [str(src)]
    assert claimers <= {first.pid, second.pid}


def _wait_for_start(vault: Any, job_id: str, timeout: float = 60) -> None:
    """Until the job holds the repository lock and has begun (BackupStarted), read straight
    from the jobs table: a fast machine may finish a backup within the first progress
    flush, so the kill lands as soon as the backup has begun, before its snapshot."""
    deadline = time.monotonic() + timeout
    while True:
        rows = read_jobs(vault.env.journal_path, job_id=job_id)
        if rows and rows[0]["started_at"] is not None:
            return
        assert time.monotonic() < deadline, f"{job_id} never started"
        time.sleep(0.005)


@pytest.mark.slow
def test_kill_9_mid_backup_the_next_worker_retries_to_exactly_one_snapshot(
        vault_repo: Any, workers: Workers, fs: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(8):
        fs.write_random(src / f"r{i}.bin", 20 * MiB, seed=100 + i)
    expected = fs.tree_meta(src)
    doomed = workers.start()
    job_id = queue_backup(vault_repo, src)
    _wait_for_start(vault_repo, job_id)
    doomed.kill()
    doomed.wait()
    kinds = [e["type"] for e in job_events(vault_repo, job_id)]
    if "BackupCompleted" in kinds:
        pytest.fail("the backup finished before the kill; make the data larger")
    listed = {j["job_id"]: j for j in vault_repo.query("jobs").summary["jobs"]}
    assert listed[job_id]["status"] == "running"

    workers.start()
    done = follow(vault_repo, job_id, workers)
    assert done["event"] == "BackupCompleted"
    kinds = [e["type"] for e in job_events(vault_repo, job_id)]
    assert kinds.count("JobInterrupted") == 1 and kinds.count("JobClaimed") == 2
    interrupted = next(e for e in job_events(vault_repo, job_id)
                       if e["type"] == "JobInterrupted")["payload"]
    assert interrupted["will_retry"] is True and str(doomed.pid) in interrupted["reason"]
    assert [s["job_id"] for s in snapshots(vault_repo)] == [job_id]
    listed = {j["job_id"]: j for j in vault_repo.query("jobs").summary["jobs"]}
    assert (listed[job_id]["status"], listed[job_id]["attempt"]) == ("completed", 2)

    verified_and_restored(vault_repo, fs, done["payload"]["snapshot_id"], src, expected,
                          tmp_path / "out")


def test_cancel_and_list_through_the_cli(vault_repo: Any, tmp_path: Path) -> None:
    """No worker runs: the job waits in the SQLite queue until it is cancelled."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    job_id = queue_backup(vault_repo, src)
    listed = vault_repo.query("jobs", "--status", "queued").summary["jobs"]
    assert [j["job_id"] for j in listed] == [job_id]
    assert vault_repo.json("jobs", "cancel", job_id[:12]).code == 0
    assert vault_repo.query("jobs").summary["jobs"][0]["status"] == "cancelled"
    again = vault_repo.json("jobs", "cancel", job_id)
    assert again.code == 1 and "only a queued job" in again.last["message"]
    assert vault_repo.json("jobs", "follow", job_id).code == 1
    assert vault_repo.json("jobs", "show", "nope-nope").code == 2
    refused = vault_repo.json("backup", "--queue", "--dry-run", src)
    assert refused.code == 2 and "--dry-run" in refused.last["message"]


def test_a_worker_refuses_to_start_on_an_unreachable_queue(vault_repo: Any) -> None:
    if importlib.util.find_spec("redis") is None:
        pytest.skip("the `redis` Python client is not installed (needed by RedisHuey)")
    use_redis_queue(vault_repo, f"redis://127.0.0.1:{_free_port()}/0")  # nothing listens
    done = vault_repo.run("worker", timeout=60)
    assert done.returncode == 1, done.stderr
    assert "the job queue at redis://127.0.0.1:" in done.stderr
    assert "unavailable" in done.stderr


def stored_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / "data").rglob("*") if p.is_file())


def test_a_queued_prune_frees_what_forgotten_snapshots_held(vault_repo: Any, workers: Workers,
                                                            fs: Any, tmp_path: Path) -> None:
    """`vault prune --queue`: the worker garbage-collects; the space of the forgotten
    snapshot comes back, the kept one verifies and restores byte for byte."""
    src = tmp_path / "src"
    fs.write_random(src / "old.bin", 6 * MiB, seed=1)
    (src / "kept.txt").write_text("kept\n")
    first = vault_repo.backup(src)["snapshot_id"]
    (src / "old.bin").unlink()
    fs.write_random(src / "new.bin", 3 * MiB, seed=2)
    expected = fs.tree_meta(src)
    kept = vault_repo.backup(src)["snapshot_id"]
    vault_repo.ok("forget", first)
    before = stored_bytes(vault_repo.env.repo)

    refused = vault_repo.json("prune", "--queue", "--dry-run")
    assert refused.code == 2 and "--dry-run" in refused.last["message"]
    assert vault_repo.json("prune", "--queue", "--max-unused", "150%").code == 2
    queued = vault_repo.json("prune", "--queue", "--max-unused", "0%")
    assert queued.code == 0, (queued.last, queued.stderr)
    assert (queued.summary["kind"], queued.summary["status"]) == ("prune", "queued")
    job_id = str(queued.summary["job_id"])
    assert vault_repo.events("PruneCompleted") == []  # queued, not run here
    workers.start()

    done = follow(vault_repo, job_id, workers)
    assert done["event"] == "PruneCompleted" and done["exit_code"] == 0
    assert done["payload"]["bytes_deleted"] >= 6 * MiB
    kinds = [e["type"] for e in job_events(vault_repo, job_id)]
    assert kinds[:4] == ["PruneRequested", "JobQueued", "JobClaimed", "PruneStarted"]
    assert kinds[-1] == "PruneCompleted" and kinds.count("PruneRequested") == 1
    [requested] = [e for e in vault_repo.events("PruneRequested") if e["stream_id"] == job_id]
    assert requested["payload"]["max_unused"] == 0.0
    listed = vault_repo.query("jobs").summary["jobs"]
    assert [(j["kind"], j["status"]) for j in listed if j["job_id"] == job_id] == [
        ("prune", "completed")]
    assert before - stored_bytes(vault_repo.env.repo) >= 6 * MiB

    verified_and_restored(vault_repo, fs, kept, src, expected, tmp_path / "out")


def test_an_inline_prune_is_a_job_in_the_list_too(vault_repo: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    vault_repo.backup(src)
    pruned = vault_repo.json("prune")
    assert pruned.code == 0, pruned.last
    [row] = [j for j in vault_repo.query("jobs").summary["jobs"] if j["kind"] == "prune"]
    assert (row["job_id"], row["status"]) == (pruned.summary["job_id"], "completed")
