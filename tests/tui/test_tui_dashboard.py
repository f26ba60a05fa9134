"""The dashboard over a real repository: last backup per source, a queued job waiting for
a worker, the journal followed live, keys that queue jobs, errors in a modal."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Static
from tui_helpers import LARGE, SMALL, job_figures, wait_for

from vault_tui.screens.dashboard import DashboardScreen, JobProgress
from vault_tui.screens.modals import ErrorModal


def _rows(app) -> list[list[str]]:  # type: ignore[no-untyped-def]
    table = app.screen.query_one("#sources", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_the_dashboard_shows_the_last_backup_of_each_source(
        vault_repo, files_source: Path, make_app, size) -> None:  # type: ignore[no-untyped-def]
    summary = vault_repo.backup()
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await wait_for(lambda: bool(_rows(app)), pilot)
        assert isinstance(app.screen, DashboardScreen)
        [row] = _rows(app)
        assert row[:3] == ["docs", "files", "completed"]
        assert row[4] == "11 B"  # alpha\n + beta\n
        assert summary["snapshot_id"]
        storage = str(app.screen.query_one("#storage-text").render())
        assert "1 snapshot(s)" in storage
        assert not app.screen.query_one("#alerts", Static).display  # no alerts, no section


async def test_back_up_now_queues_a_job_that_waits_for_a_worker(
        vault_repo, files_source: Path, make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause(0.2)
        await pilot.press("b")
        await wait_for(lambda: bool(app.screen.query(JobProgress)), pilot)
        [job] = app.screen.query(JobProgress)
        assert job.job.kind == "backup" and job.job.status == "queued"
        assert job.job.label == "docs"
        await wait_for(lambda: "waiting for a worker" in job_figures(job), pilot)
        workers = str(app.screen.query_one("#workers", Static).render())
        assert workers == "workers: none running (1 queued job(s) wait for `vault worker`)"
    queued = vault_repo.events("JobQueued")
    assert [e["stream_id"] for e in queued] == [job.job.job_id]


async def test_a_backup_finishing_elsewhere_appears_without_a_key_press(
        vault_repo, files_source: Path, make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause(0.3)
        assert _rows(app) == []
        vault_repo.backup()  # another process commits to the journal
        await wait_for(lambda: bool(_rows(app)), pilot)
        assert _rows(app)[0][2] == "completed"


async def test_an_unreadable_repository_is_a_one_line_error_in_a_modal_not_a_crash(
        vault_env, tmp_path: Path, make_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bogus = tmp_path / "not-a-repo"
    bogus.write_text("hello")  # a file where the repository should be
    monkeypatch.setenv("VAULT_REPOSITORY", str(bogus))
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(lambda: isinstance(app.screen, ErrorModal), pilot)
        message = app.screen.message
        assert str(bogus) in message and "\n" not in message
        await pilot.press("escape")
        await wait_for(lambda: isinstance(app.screen, DashboardScreen), pilot)
        # The same failure on the next reload is not shown again; the app keeps running.
        app.head_seq += 1
        await pilot.pause(0.5)
        assert isinstance(app.screen, DashboardScreen)
        assert app.is_running


async def test_an_unreachable_queue_is_said_on_the_dashboard_and_the_journal_still_shows(
        vault_repo, files_source: Path, make_app, vault_env) -> None:  # type: ignore[no-untyped-def]
    vault_repo.backup()
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = Path(vault_env.env["VAULT_CONFIG"])
    secret = config.with_name("redis.pass")  # a Redis queue needs a password
    secret.write_text("not-checked: nothing listens\n")
    secret.chmod(0o600)
    config.write_text(config.read_text() + f'\n[queue]\nurl = "redis://127.0.0.1:{port}/0"\n'
                      f'password = {{ file = "{secret}" }}\n')
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(lambda: "unreachable" in str(
            app.screen.query_one("#workers", Static).render()), pilot)
        assert str(port) in str(app.screen.query_one("#workers", Static).render())
        assert "no password" not in str(app.screen.query_one("#workers", Static).render())
        assert _rows(app)[0][:3] == ["docs", "files", "completed"]
        await pilot.press("b")  # queueing fails: a one-line error in a modal, no crash
        await wait_for(lambda: isinstance(app.screen, ErrorModal), pilot)
        assert "back up:" in app.screen.message and str(port) in app.screen.message


async def test_two_reloads_before_a_new_job_widget_composed_show_the_newest_figures(
        vault_repo, files_source: Path, make_app) -> None:  # type: ignore[no-untyped-def]
    """The dashboard loads up to three times as it starts: a reload can update a job's
    widget between its mount and its compose. It must show the newest figures, not crash."""
    from dataclasses import replace

    from vault_tui.data.status import Dashboard, dashboard

    queued = vault_repo.json("backup", "--queue", "--source", "docs")  # a real queued job
    assert queued.code == 0, queued.last
    app = make_app(follow=False)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(lambda: isinstance(app.screen, DashboardScreen)
                       and bool(app.screen.query(JobProgress)), pilot)
        await app.workers.wait_for_complete()  # the startup reloads land before ours
        await pilot.pause(0.1)
        status = dashboard(app.ctx).status
        [job] = status.jobs
        app.screen.query_one("#jobs").remove_children()
        await pilot.pause(0.1)
        first = Dashboard(replace(status, jobs=[replace(job, status="running",
                                                        bytes_done=10, bytes_total=100)]), None)
        second = Dashboard(replace(status, jobs=[replace(job, status="running",
                                                         bytes_done=70, bytes_total=100)]), None)
        app.screen.show(first)  # mounts a new JobProgress
        app.screen.show(second)  # updates it before it composed its children
        await wait_for(lambda: job_figures(app.screen.query_one(JobProgress)).startswith(
            "70 B of 100 B"), pilot)
        assert len(app.screen.query(JobProgress)) == 1


async def test_journal_tampering_and_a_lost_snapshot_are_alerts(
        vault_repo, files_source: Path, make_app) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    first = vault_repo.backup()["snapshot_id"]
    second = vault_repo.backup()["snapshot_id"]
    journal = vault_repo.env.journal_path
    db = sqlite3.connect(journal)
    db.execute("DROP TRIGGER events_no_delete")
    kept = db.execute("SELECT MAX(seq) FROM events").fetchone()[0] - 2
    db.execute("DELETE FROM events WHERE seq > ?", (kept,))  # the last backup's tail
    db.commit()
    db.close()
    assert vault_repo.run("journal", "verify").returncode == 1
    (vault_repo.env.repo / "snapshots" / first).unlink()  # behind vault's back
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        widget = app.screen.query_one("#alerts", Static)
        await wait_for(lambda: "journal tampering" in str(widget.render()), pilot)
        assert widget.display
        alerts = str(widget.render()).splitlines()
        assert any(a.startswith("! journal tampering detected")
                   and f"journal ends at seq {kept} but snapshot {second[:8]}" in a
                   for a in alerts), alerts
        assert any(a.startswith(f"! snapshot {first[:8]} is missing from the repository")
                   for a in alerts), alerts
        assert not any(f"snapshot {second[:8]} is missing" in a for a in alerts)
