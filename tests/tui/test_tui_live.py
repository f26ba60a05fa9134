"""The TUI following a real worker: a backup queued with `b` on the dashboard runs in a
`vault worker` process, and the dashboard shows its progress moving (read from the
JobProgress widget while it runs), then the completed snapshot in the Sources table.

200 MiB take this machine about 1.5 s, less than the 0.5 s progress events could show
moving. So the worker gets a fifth of the wall clock, as `cpulimit` does it: its process
group is stopped and continued (SIGSTOP/SIGCONT) in turn. It runs the real backup, only
slower, and its progress events come at their own pace."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, ProgressBar
from tui_helpers import SMALL, job_figures, wait_for

from vault_tui.screens.dashboard import DashboardScreen, JobProgress
from vault_tui.screens.history import HistoryScreen

MIB = 1 << 20
#: incompressible data, enough for several progress events (about one every 0.5 s)
FILES, FILE_MIB = 2, 100
#: seconds the worker runs, then is stopped, in turn
RUN_SECONDS, STOPPED_SECONDS = 0.1, 0.4


@pytest.fixture
def big_source(vault_repo: Any, fs: Any, tmp_path: Path) -> Path:
    data = tmp_path / "big"
    for n in range(FILES):
        fs.write_random(data / f"part{n}.bin", FILE_MIB * MIB, seed=n)
    config = tmp_path / "vault.toml"
    config.write_text(f'[[sources]]\ntype = "files"\nname = "big"\npaths = ["{data}"]\n')
    vault_repo.env.env["VAULT_CONFIG"] = str(config)
    return data


class ThrottledWorker:
    """`vault worker` in its own process group, which a thread stops and continues in
    turn until `stop()`; then it is continued and terminated (SIGKILL after 30 s)."""

    def __init__(self, vault: Any, log: Path) -> None:
        self._log = open(log, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = vault.popen("worker", "--retry-delay", "0.5", stderr=self._log,
                                start_new_session=True)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._throttle, daemon=True)
        self._thread.start()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # it has already gone
            os.killpg(self.proc.pid, sig)

    def _throttle(self) -> None:
        while not self._done.wait(RUN_SECONDS):
            self._signal(signal.SIGSTOP)
            self._done.wait(STOPPED_SECONDS)
            self._signal(signal.SIGCONT)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5)
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait()
        self._log.close()


@pytest.fixture
def worker(vault_repo: Any, tmp_path: Path) -> Iterator[list[ThrottledWorker]]:
    """Started by the test when it wants it; stopped after."""
    started: list[ThrottledWorker] = []
    yield started
    for throttled in started:
        throttled.stop()


def sources(app: Any) -> list[list[str]]:
    table = app.screen.query_one("#sources", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


@pytest.mark.slow
async def test_a_backup_run_by_a_worker_moves_on_the_dashboard_then_lands(
        vault_repo: Any, big_source: Path, worker: list[ThrottledWorker], make_app: Any,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_CONFIG", vault_repo.env.env["VAULT_CONFIG"])
    total = FILES * FILE_MIB * MIB
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(lambda: isinstance(app.screen, DashboardScreen), pilot)
        await pilot.pause(0.2)
        await pilot.press("b")
        await wait_for(lambda: bool(app.screen.query(JobProgress)), pilot)
        [job] = app.screen.query(JobProgress)
        job_id = job.job.job_id
        await wait_for(lambda: "waiting for a worker" in job_figures(job), pilot)

        worker.append(ThrottledWorker(vault_repo, tmp_path / "worker.log"))

        # Read the widget while the worker runs: the bar's progress and the figures.
        seen: list[float] = []

        def moved() -> bool:
            widgets = list(app.screen.query(JobProgress))
            if not widgets:
                return True  # finished: judged below
            bar = widgets[0].query_one(ProgressBar)
            if bar.total and (not seen or bar.progress != seen[-1]):
                seen.append(bar.progress)
                figures = str(widgets[0].query_one(".job-figures").render())
                assert "of 200.0 MiB" in figures, figures
            return False

        await wait_for(moved, pilot, timeout=240)
        assert len(seen) >= 3, f"progress values seen: {seen}"
        assert seen == sorted(seen) and seen[0] < seen[-1] <= total
        assert len(set(seen)) == len(seen) and seen[0] < total

        await wait_for(lambda: bool(sources(app)) and sources(app)[0][2] == "completed", pilot,
                       timeout=60)
        [row] = sources(app)
        assert row[:3] == ["big", "files", "completed"] and row[4] == "200.0 MiB"
        assert not app.screen.query(JobProgress)
        assert str(app.screen.query_one("#no-jobs").render()) == "none"

        # ... and in the history, as the newest snapshot
        await pilot.press("2")
        await wait_for(lambda: isinstance(app.screen, HistoryScreen)
                       and app.screen.query_one("#snapshots", DataTable).row_count == 1, pilot)
        history = [str(cell) for cell in
                   app.screen.query_one("#snapshots", DataTable).get_row_at(0)]
        assert "big" in history and "completed" in history and "200.0 MiB" in history

    [completed] = vault_repo.events("BackupCompleted")
    assert completed["payload"]["job_id"] == job_id
    assert completed["payload"]["bytes_raw"] == total
    snapshots = vault_repo.query("snapshots").summary["snapshots"]
    assert [s["id"] for s in snapshots] == [completed["payload"]["snapshot_id"]]
    assert any(cell.startswith(completed["payload"]["snapshot_id"][:8]) for cell in history)
