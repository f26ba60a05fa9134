"""Schedules run by real `vault worker` processes on the SQLite queue.

Time is not simulated here: a schedule's creation (its `ScheduleAdded.since`) is
journaled in the past, as if it had been added while no worker ran, and the cron
expressions are chosen so that a due time lies a few minutes back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_jobs_worker import MiB, Workers, snapshots, stored_bytes

from vault.config.model import load_config
from vault.journal import Journal
from vault.journal import events as ev
from vault.runtime.effective_schedules import definition_of, schedule_stream, utc_text


@pytest.fixture
def workers(vault_repo: Any, tmp_path: Path) -> Iterator[Workers]:
    logs = tmp_path / "logs"
    logs.mkdir()
    started = Workers(vault_repo, logs)
    yield started
    started.stop_all()


def write_config(vault: Any, text: str) -> None:
    path = vault.env.home / "config" / "vault" / "vault.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def journal_as_added_at(vault: Any, name: str, since: datetime) -> None:
    """Journal the vault.toml schedule `name` as first seen at `since` (in the past)."""
    config = load_config(None)
    [schedule] = [s for s in config.schedules if s.name == name]
    with Journal(vault.env.journal_path) as journal:
        journal.append(schedule_stream(name), ev.ScheduleAdded(
            name=name, origin="config", definition=definition_of(schedule),
            since=utc_text(since)), expected_version=0)


def wait_for(check: Callable[[], Any], what: str, workers: Workers,
             timeout: float = 45) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n{workers.logs()}")


def payloads(vault: Any, kind: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in vault.events(kind)]


def files_config(src: Path, schedule: str) -> str:
    return f"""
[[sources]]
type = "files"
name = "docs"
paths = ["{src}"]

[[sources]]
type = "files"
name = "other"
paths = ["{src}"]

{schedule}
"""


@pytest.mark.parametrize("catch_up", [True, False])
def test_a_run_due_while_no_worker_ran_is_reported_and_caught_up(
        vault_repo: Any, workers: Workers, fs: Any, tmp_path: Path, catch_up: bool) -> None:
    src = tmp_path / "src"
    fs.write_random(src / "a.bin", 300_000, seed=1)
    (src / "b.txt").write_text("scheduled\n")
    now = datetime.now(UTC)
    due = (now - timedelta(minutes=10)).replace(second=0, microsecond=0)
    write_config(vault_repo, files_config(src, f"""
[[schedules]]
name = "nightly"
cron = "{due.minute} {due.hour} * * *"
sources = ["docs"]
tags = ["nightly"]
catch_up = {str(catch_up).lower()}
"""))
    journal_as_added_at(vault_repo, "nightly", now - timedelta(minutes=30))
    workers.start("--schedule-every", "0.5")

    [missed] = wait_for(lambda: payloads(vault_repo, "ScheduleRunMissed"), "the missed run",
                        workers)
    assert missed["missed"] == [utc_text(due)] and missed["missed_count"] == 1
    assert missed["caught_up"] is catch_up
    if not catch_up:
        time.sleep(3)  # several more ticks: still nothing queued
        assert payloads(vault_repo, "ScheduleRunQueued") == [] and snapshots(vault_repo) == []
        return
    [taken] = wait_for(lambda: snapshots(vault_repo), "the catch-up snapshot", workers)
    [run] = payloads(vault_repo, "ScheduleRunQueued")
    assert run["catch_up"] and run["due"] == utc_text(due) and run["sources"] == ["docs"]
    assert taken["job_id"] == run["job_ids"][0]
    assert taken["tags"] == ["nightly", "schedule:nightly"]
    assert taken["source"]["label"] == "docs"
    out = tmp_path / "out"
    vault_repo.restore(f"{taken['id']}:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)
    [done] = wait_for(lambda: payloads(vault_repo, "ScheduleRunCompleted"), "the run's end",
                      workers)
    assert done["status"] == "completed"
    listed = vault_repo.query("schedule", "list").summary["schedules"]
    assert [(s["name"], s["last_result"], s["missed_total"]) for s in listed] == [
        ("nightly", "completed", 1)]


def test_two_workers_on_one_queue_queue_each_run_once(vault_repo: Any, workers: Workers,
                                                      tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("every minute\n")
    write_config(vault_repo, files_config(src, """
[[schedules]]
name = "minutely"
cron = "* * * * *"
sources = ["docs", "other"]
"""))
    journal_as_added_at(vault_repo, "minutely", datetime.now(UTC) - timedelta(minutes=3))
    first, second = (workers.start("--schedule-every", "0.5"),
                     workers.start("--schedule-every", "0.5"))
    runs = wait_for(lambda: payloads(vault_repo, "ScheduleRunQueued"), "a run", workers)
    job_ids = {j for run in runs for j in run["job_ids"]}
    wait_for(lambda: {s["job_id"] for s in snapshots(vault_repo)} >= job_ids,
             "the run's snapshots", workers)
    workers.stop_all()
    assert first.returncode == 0 and second.returncode == 0, workers.logs()

    runs = payloads(vault_repo, "ScheduleRunQueued")
    keys = [r["run_key"] for r in runs]
    assert len(keys) == len(set(keys)), keys
    missed = payloads(vault_repo, "ScheduleRunMissed")
    assert len(missed) == 1 and missed[0]["missed_count"] >= 1  # one report, not two
    all_ids = [j for run in runs for j in run["job_ids"]]
    assert len(all_ids) == 2 * len(runs)
    taken = [s["job_id"] for s in snapshots(vault_repo)]
    # Each job ran once; a run queued in the last instant before the stop may not have.
    assert len(taken) == len(set(taken)) and job_ids <= set(taken) <= set(all_ids)
    queued = [e["payload"]["job_id"] for e in vault_repo.events("JobQueued")]
    assert sorted(queued) == sorted(all_ids)


def test_schedule_commands(vault_repo: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_config(vault_repo, files_config(src, """
[[schedules]]
name = "nightly"
cron = "0 2 * * *"
timezone = "Europe/Berlin"
"""))
    added = vault_repo.json("schedule", "add", "often", "--cron", "*/10 * * * *",
                            "--source", "other", "--tag", "t1", "--no-catch-up",
                            "--keep-last", "3", "--keep-daily", "7")
    assert added.code == 0, added.stderr
    assert added.summary["schedule"]["catch_up"] is False
    listed = {s["name"]: s for s in vault_repo.query("schedule", "list").summary["schedules"]}
    assert set(listed) == {"nightly", "often"}
    assert (listed["nightly"]["origin"], listed["often"]["origin"]) == ("config", "cli")
    assert listed["often"]["sources"] == ["other"] and listed["often"]["tags"] == ["t1"]
    assert listed["nightly"]["next_run"].endswith(("T01:00:00+00:00", "T00:00:00+00:00"))

    assert vault_repo.json("schedule", "pause", "nightly").summary["schedule"]["paused"]
    assert vault_repo.query("schedule", "list").summary["schedules"][0]["next_run"] is None
    resumed = vault_repo.json("schedule", "resume", "nightly").summary["schedule"]
    assert not resumed["paused"] and resumed["next_run"] is not None

    ran = vault_repo.json("schedule", "run", "often")
    assert ran.code == 0, ran.stderr
    [job_id] = ran.summary["job_ids"]
    [request] = payloads(vault_repo, "BackupRequested")
    assert (request["job_id"], request["source"]) == (job_id, "other")
    assert sorted(request["tags"]) == ["schedule:often", "t1"]

    # retention: replaced whole, or cleared back to [retention]; vault.toml's is refused
    changed = vault_repo.json("schedule", "retention", "often", "--keep-weekly", "4",
                              "--keep-within", "36h")
    assert changed.code == 0, changed.last
    assert changed.summary["schedule"]["retention"] == {"keep_weekly": 4, "keep_within": "1d12h"}
    listed = {s["name"]: s for s in vault_repo.query("schedule", "list").summary["schedules"]}
    assert listed["often"]["retention"] == changed.summary["schedule"]["retention"]
    assert listed["often"]["cron"] == "*/10 * * * *"  # the timetable goes on as it was
    unclear = vault_repo.json("schedule", "retention", "often")
    assert unclear.code == 2 and "--clear" in unclear.last["message"]
    config_owned = vault_repo.json("schedule", "retention", "nightly", "--keep-last", "1")
    assert config_owned.code == 2 and "[[schedules]]" in config_owned.last["message"]
    cleared = vault_repo.json("schedule", "retention", "often", "--clear")
    assert cleared.code == 0 and cleared.summary["schedule"]["retention"] is None

    refused = vault_repo.json("schedule", "remove", "nightly")
    assert refused.code == 2 and "edit" not in refused.last["message"]
    assert "delete its [[schedules]] entry there" in refused.last["message"]
    assert vault_repo.json("schedule", "remove", "often").code == 0
    missing = vault_repo.json("schedule", "run", "often")
    assert missing.code == 2 and missing.last["message"] == \
        "no schedule named often (see `vault schedule list`)"
    bad = vault_repo.json("schedule", "add", "x", "--cron", "0 0 31 2 *")
    assert bad.code == 2 and bad.last["message"] == \
        "invalid schedule: the cron expression '0 0 31 2 *' never matches"
    zone = vault_repo.query("schedule", "add", "x", "--cron", "daily", "--timezone", "Mars/X")
    assert zone.code == 2 and zone.last["message"].startswith(
        "invalid schedule: timezone: unknown timezone 'Mars/X'")
    kinds = [e["type"] for e in vault_repo.events() if e["stream_id"].startswith("schedule-")]
    assert kinds == ["ScheduleAdded", "ScheduleAdded", "SchedulePaused", "ScheduleResumed",
                     "ScheduleRunQueued", "ScheduleRetentionChanged",
                     "ScheduleRetentionChanged", "ScheduleRemoved"]


def test_a_schedules_retention_removes_its_own_older_snapshots(
        vault_repo: Any, workers: Workers, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("v1\n")
    write_config(vault_repo, files_config(src, """
[[schedules]]
name = "keep1"
cron = "0 3 * * *"
sources = ["docs"]
retention = { keep_last = 1 }
"""))
    manual = vault_repo.backup("--source", "docs")["snapshot_id"]
    other = vault_repo.backup("--source", "other", "--tag", "schedule:keep1")["snapshot_id"]
    workers.start("--schedule-every", "0.5")
    taken = []
    for round_ in (1, 2, 3):
        (src / "f.txt").write_text(f"v{round_ + 1}\n")
        job_id = vault_repo.json("schedule", "run", "keep1").summary["job_ids"][0]
        wait_for(lambda n=round_: len(payloads(vault_repo, "ScheduleRetentionApplied")) == n,
                 f"retention after run {round_}", workers)
        taken.append(next(s["id"] for s in snapshots(vault_repo) if s["job_id"] == job_id))
    applied = payloads(vault_repo, "ScheduleRetentionApplied")
    assert [a["removed"] for a in applied] == [[], [taken[0]], [taken[1]]]
    assert all(a["error"] is None and a["kept"] == 1 for a in applied)
    left = {s["id"] for s in snapshots(vault_repo)}
    assert left == {manual, other, taken[2]}  # not the manual one, not another source's
    forgotten = {e["payload"]["snapshot_id"] for e in vault_repo.events("SnapshotForgotten")}
    assert forgotten == {taken[0], taken[1]}
    out = tmp_path / "out"
    vault_repo.restore(f"{taken[2]}:{src}", "--target", out)
    assert (out / "f.txt").read_text() == "v4\n"


def test_a_schedule_with_prune_gives_the_space_of_what_it_forgot_back(
        vault_repo: Any, workers: Workers, fs: Any, tmp_path: Path) -> None:
    """`prune = true`: once the schedule's retention forgot a snapshot, a prune job is
    queued and run by the worker; the forgotten data's space comes back, the kept
    snapshot restores exactly."""
    src = tmp_path / "src"
    src.mkdir()
    write_config(vault_repo, files_config(src, """
[[schedules]]
name = "lean"
cron = "0 3 * * *"
sources = ["docs"]
retention = { keep_last = 1 }
prune = true
"""))
    listed = vault_repo.query("schedule", "list").summary["schedules"]
    assert [s["prune"] for s in listed if s["name"] == "lean"] == [True]
    workers.start("--schedule-every", "0.5")
    for round_ in (1, 2):
        fs.write_random(src / "data.bin", 4 * MiB, seed=round_)  # all new every round
        vault_repo.json("schedule", "run", "lean")
        wait_for(lambda n=round_: len(payloads(vault_repo, "ScheduleRetentionApplied")) == n,
                 f"retention after run {round_}", workers)
        if round_ == 1:
            stored = stored_bytes(vault_repo.env.repo)
    first, second = payloads(vault_repo, "ScheduleRetentionApplied")
    assert first["removed"] == [] and first["prune_job_id"] is None  # nothing to free
    assert len(second["removed"]) == 1 and second["prune_job_id"]
    wait_for(lambda: [p for p in payloads(vault_repo, "PruneCompleted")
                      if p["job_id"] == second["prune_job_id"]], "the queued prune", workers)
    # the first round's 4 MiB are gone again: the repository holds about one round
    assert stored_bytes(vault_repo.env.repo) < stored + MiB
    [kept] = snapshots(vault_repo)
    out = tmp_path / "out"
    vault_repo.restore(f"{kept['id']}:{src}", "--target", out)
    fs.assert_same_tree(src, out, include_root=False)
