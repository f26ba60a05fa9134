"""The planner looks only at what the selection can hold, and an entry that goes away
while it looks is simply not there.

An undo restores its safety copy into "/" with the changed paths as the selection; the
target scan then lists /tmp, where other processes (another test worker, a backup's temp
files) create and remove entries all the time. It once failed with `No such file or
directory: '/tmp/vault-pg-...'` (an entry listed, gone before it was looked at)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from vault.restore.files_plan import scan_target
from vault.restore.selection import Selection


def test_entries_that_come_and_go_beside_the_selection_do_not_fail_the_scan(
        tmp_path: Path) -> None:
    busy = tmp_path / "tmp"  # stands for /tmp: the selection lies below one entry of it
    wanted = busy / "job" / "target"
    wanted.mkdir(parents=True)
    (wanted / "f.txt").write_text("kept\n")
    stop = threading.Event()

    def churn() -> None:  # another process's temporary directories
        n = 0
        while not stop.is_set():
            path = busy / f"vault-pg-{n % 50}"
            path.mkdir(exist_ok=True)
            (path / "x").write_text("x")
            os.unlink(path / "x")
            os.rmdir(path)
            n += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        selection = Selection(paths=(str(wanted / "f.txt"),))
        for _ in range(300):
            found = scan_target("/", "/", selection, set())
            assert set(found) == {str(wanted / "f.txt").lstrip("/")}
    finally:
        stop.set()
        worker.join()

