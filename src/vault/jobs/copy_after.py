"""A schedule's `copy_to`: after a run that backed something up, the worker copies the
schedule's snapshots into each named repository (`vault copy`, operations/copy.py).

Each copy runs in a thread of the worker, one per target at a time, so a long copy holds up
neither the scheduler nor the jobs. Each takes the schedule's snapshots from the newest one
the target already holds on (planning.copy_plan.after_newest_copy): a copy that failed, was
still running when the next run ended, or died with the worker is made up by the next
run's, and what the target's own retention forgot is not copied back. A worker stopped
mid-copy leaves what a killed `vault copy` leaves, which the next copy completes.
"""

from __future__ import annotations

import logging
import threading

from vault.config.model import Schedule, VaultConfig
from vault.errors import VaultError
from vault.foundation.progress import NullReporter
from vault.operations.copy import CopyRequest, run_copy
from vault.runtime.app import Vault
from vault.runtime.effective_schedules import schedule_tag

log = logging.getLogger("vault.jobs")


class ScheduledCopies:
    """The copy threads of one worker, by target repository name."""

    def __init__(self, config: VaultConfig) -> None:
        self.config = config
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, schedule: Schedule) -> list[str]:
        """Start a copy into each of the schedule's targets not busy with one already;
        returns the targets started."""
        started = []
        for target in schedule.copy_to:
            with self._lock:
                running = self._running.get(target)
                if running is not None and running.is_alive():
                    log.info("schedule %s: a copy to %s is still running; the next run "
                             "copies what this one made", schedule.name, target)
                    continue
                thread = threading.Thread(target=self._copy, args=(schedule.name, target),
                                          name=f"copy-to-{target}", daemon=True)
                self._running[target] = thread
            thread.start()
            started.append(target)
        return started

    def _copy(self, schedule: str, target: str) -> None:
        vault = Vault(self.config)  # its own journal connection: this is another thread
        try:
            report = run_copy(vault, CopyRequest(to=target, all=True,
                                                 tag=schedule_tag(schedule),
                                                 after_newest_copy=True), NullReporter())
            log.info("schedule %s: %d snapshot(s) copied to %s, %d already there, %d failed",
                     schedule, len(report.copied), target, len(report.skipped),
                     len(report.failed))
        except VaultError as exc:
            log.warning("schedule %s: copy to %s failed: %s", schedule, target, exc.message)
            if not getattr(exc, "journaled", False):  # failed before CopyRequested
                vault.record_failure(f"copy to {target} (schedule {schedule})", exc.kind,
                                     exc.message)
        except Exception:  # a bug must not take the worker down; the next run tries again
            log.exception("schedule %s: copy to %s failed", schedule, target)
        finally:
            vault.close()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the copies running now (tests; a stopping worker does not wait)."""
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join(timeout)
