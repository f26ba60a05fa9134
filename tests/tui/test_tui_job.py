"""The job detail over real jobs: a finished backup, a failed one (the error shown and
its event highlighted), and a queued one that a real `vault worker` then runs while the
screen follows it."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.widgets import DataTable, ProgressBar, Static, TextArea
from tui_helpers import LARGE, SMALL, wait_for

from vault_tui.data.jobs import read_job
from vault_tui.screens.dashboard import DashboardScreen
from vault_tui.screens.job import JobScreen
from vault_tui.screens.journal import EventModal


def text(app: Any, selector: str) -> str:
    found = app.screen.query(selector)
    return str(found.first(Static).render()) if found else ""


def event_rows(app: Any) -> list[list[Any]]:
    found = app.screen.query("#job-events")
    if not found:
        return []  # the screen is still being composed
    table = found.first(DataTable)
    return [list(table.get_row_at(i)) for i in range(table.row_count)]


def stream(vault: Any, job_id: str) -> list[dict[str, Any]]:
    result = vault.query("journal", "--stream", job_id)
    assert result.code == 0, result.stderr
    return list(result.summary["events"])


async def open_job(app: Any, pilot: Any, job_id: str) -> JobScreen:
    await wait_for(lambda: isinstance(app.screen, DashboardScreen), pilot)
    app.open_job(job_id)
    await wait_for(lambda: isinstance(app.screen, JobScreen) and bool(event_rows(app)), pilot)
    assert isinstance(app.screen, JobScreen)
    return app.screen


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_a_finished_backup_shows_its_row_and_its_events(
        vault_repo, files_source: Path, make_app, size) -> None:  # type: ignore[no-untyped-def]
    summary = vault_repo.backup("--tag", "nightly")
    job_id, snapshot_id = summary["job_id"], summary["snapshot_id"]
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await open_job(app, pilot, job_id)
        assert text(app, "#job-title") == f"backup {job_id} completed"
        facts = text(app, "#job-facts")
        assert "requested " in facts and "finished " in facts
        assert f"snapshot {snapshot_id[:8]}" in facts
        assert not app.screen.query_one("#job-progress", ProgressBar).display
        assert not app.screen.query_one("#job-error", Static).display
        journaled = stream(vault_repo, job_id)
        rows = event_rows(app)
        assert [str(row[1]) for row in rows] == [e["type"] for e in journaled]
        assert str(rows[0][2]) == "docs (files) tags nightly"
        assert str(rows[-1][2]) == (f"snapshot {snapshot_id[:8]} completed: 11 B, "
                                    f"{_human(summary['bytes_new'])} new")
        # The cursor starts on the newest event; Enter shows its payload in full.
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, EventModal), pilot)
        shown = app.screen.query_one("#event-payload", TextArea).text
        assert json.loads(shown) == journaled[-1]["payload"]
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, JobScreen), pilot)
        await pilot.press("escape")  # back to where it was opened from
        await wait_for(lambda: isinstance(app.screen, DashboardScreen), pilot)


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_a_failed_backup_shows_its_error_and_highlights_the_failure(
        vault_repo, files_source: Path, make_app, size) -> None:  # type: ignore[no-untyped-def]
    config = Path(vault_repo.env.env["VAULT_CONFIG"])
    # Nothing listens on port 1: the PostgreSQL source fails at once, as a real one would.
    config.write_text(config.read_text() + '\n[[sources]]\ntype = "postgresql"\nname = "shop"\n'
                      'host = "127.0.0.1"\nport = 1\ndbname = "shop"\nuser = "vault"\n')
    refused = vault_repo.json("backup", "--source", "shop")
    assert refused.code == 1 and refused.last["error"] == "PgUnreachable"
    [failed] = vault_repo.events("BackupFailed")
    job_id, payload = failed["stream_id"], failed["payload"]
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await open_job(app, pilot, job_id)
        assert text(app, "#job-title") == f"backup {job_id} failed"
        error = app.screen.query_one("#job-error", Static)
        assert error.display
        assert str(error.render()) == f"{payload['error_kind']}: {payload['message']}"
        assert "127.0.0.1:1" in payload["message"]
        rows = event_rows(app)
        assert [str(row[1]) for row in rows] == [e["type"] for e in stream(vault_repo, job_id)]
        last_type, last_summary = rows[-1][1], rows[-1][2]
        assert str(last_type) == "BackupFailed"
        assert str(last_summary) == f"{payload['error_kind']}: {payload['message']}"
        colour = app.theme_variables["error"]
        assert isinstance(last_type, Text) and str(last_type.style) == colour
        assert all(str(row[1].style) != colour for row in rows[:-1])


async def test_a_queued_job_waits_for_a_worker_then_follows_it_to_the_end(
        vault_repo, files_source: Path, make_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    queued = vault_repo.json("backup", "--queue", "--source", "docs")
    assert queued.code == 0, queued.last
    job_id = queued.summary["job_id"]
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_job(app, pilot, job_id)
        assert text(app, "#job-title") == f"backup {job_id} queued"
        assert screen.query_one("#job-progress", ProgressBar).display
        assert text(app, "#job-figures") == "waiting for a worker"
        assert "no worker yet" in text(app, "#job-facts")

        log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
        worker = vault_repo.popen("worker", "--retry-delay", "0.5", stderr=log)
        try:
            seen: list[tuple[str, int | None, float | None]] = []

            def finished() -> bool:
                job = screen.detail.job if screen.detail else None
                if job is not None:
                    bar = screen.query_one("#job-progress", ProgressBar)
                    seen.append((job.status, job.bytes_done, bar.progress if bar.display
                                 else None))
                return job is not None and job.status == "completed"

            try:  # a loaded machine (the whole suite on 2 cores) starts a worker slowly
                await wait_for(finished, pilot, timeout=180)
            except AssertionError as exc:
                log.flush()
                worker_log = (tmp_path / "worker.log").read_text(errors="replace")
                raise AssertionError(f"{exc}; seen {seen[-5:]}; worker log:\n{worker_log}"
                                     ) from None
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
            log.close()
        assert text(app, "#job-title") == f"backup {job_id} completed"
        assert not screen.query_one("#job-progress", ProgressBar).display
        assert f"worker {_host()}:{worker.pid}" in text(app, "#job-facts")
        types = [str(row[1]) for row in event_rows(app)]
        assert types[0] == "BackupRequested" and "JobQueued" in types
        assert "JobClaimed" in types and types[-1] == "BackupCompleted"
        # Whenever the screen caught the job running with bytes counted, the bar agreed.
        for status, done, progress in seen:
            if status == "running" and done is not None and progress is not None:
                assert progress == done


async def test_a_job_the_journal_does_not_know_says_so(
        vault_repo, files_source: Path, make_app) -> None:  # type: ignore[no-untyped-def]
    vault_repo.backup()
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(lambda: isinstance(app.screen, DashboardScreen), pilot)
        app.open_job("backup-0000000000000000")
        await wait_for(lambda: isinstance(app.screen, JobScreen)
                       and "not in the journal" in text(app, "#job-title"), pilot)
        assert event_rows(app) == []


def test_read_job_lists_a_long_jobs_newest_events_and_counts_the_rest(
        vault_repo, files_source: Path) -> None:  # type: ignore[no-untyped-def]
    job_id = vault_repo.backup()["job_id"]
    journal = vault_repo.env.journal_path
    every = read_job(journal, job_id)
    assert every.job is not None and every.job.status == "completed" and every.earlier == 0
    last_two = read_job(journal, job_id, limit=2)
    assert last_two.events == every.events[-2:]
    assert last_two.earlier == len(every.events) - 2


def _human(n: int) -> str:
    from vault.foundation.units import human_bytes

    return human_bytes(n)


def _host() -> str:
    import socket

    return socket.gethostname()
