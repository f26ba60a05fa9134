"""`[restore]` hooks: operator commands run around a real restore.

A pre_hook typically pauses the application that writes to the target (`systemctl stop
app`), a post_hook resumes it. Both run with `sh -c` and see what is being restored in
their environment:

    VAULT_RESTORE_JOB       the restore's job id
    VAULT_RESTORE_TARGET    the target (a directory, a database file/name/URL, or
                            "(the source's own location)")
    VAULT_RESTORE_SNAPSHOT  the snapshot id
    VAULT_RESTORE_PHASE     "pre" or "post"
    VAULT_RESTORE_STATUS    post only: "completed" or "failed"

A pre_hook that exits non-zero or outlives `hook_timeout` aborts the restore before
anything is written. The post_hook runs whether the restore succeeded or failed (the
writers must come back either way); its failure is a warning, not a failed restore.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from vault.config.model import RestoreConfig
from vault.errors import OperationFailed
from vault.journal import events as ev

Phase = Literal["pre", "post"]
#: how much of a hook's output is kept in the journal and in messages
OUTPUT_TAIL = 2000


class PreHookFailed(OperationFailed):
    """restore aborted before writing anything: pre_hook `{command}` {how}"""


@dataclass(frozen=True)
class HookRun:
    phase: Phase
    command: str
    exit_code: int | None  # None: killed after the timeout
    timed_out: bool
    duration_seconds: float
    output: str  # the tail of stdout + stderr

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def how(self) -> str:
        """What went wrong, for a one-line message ("exited with status 3: ...")."""
        if self.timed_out:
            return f"timed out after {self.duration_seconds:.0f}s"
        last = self.output.strip().splitlines()[-1:] if self.output.strip() else []
        return f"exited with status {self.exit_code}" + (f": {last[0]}" if last else "")

    def event(self, job_id: str) -> ev.RestoreHookRan:
        return ev.RestoreHookRan(job_id=job_id, phase=self.phase, command=self.command,
                                 exit_code=self.exit_code, timed_out=self.timed_out,
                                 duration_seconds=round(self.duration_seconds, 3),
                                 output=self.output)

    def warning(self) -> dict[str, object]:
        """A failed post_hook as a warning record (warnings are data, not prose)."""
        return {"kind": "post_hook_failed", "command": self.command,
                "exit_code": self.exit_code, "timed_out": self.timed_out,
                "output": self.output}


def hook_env(phase: Phase, *, job_id: str, target: str, snapshot_id: str,
             status: str | None = None) -> dict[str, str]:
    """The variables a hook sees on top of vault's own environment (pure)."""
    env = {"VAULT_RESTORE_JOB": job_id, "VAULT_RESTORE_TARGET": target,
           "VAULT_RESTORE_SNAPSHOT": snapshot_id, "VAULT_RESTORE_PHASE": phase}
    if status is not None:
        env["VAULT_RESTORE_STATUS"] = status
    return env


def run_hook(command: str, phase: Phase, extra_env: Mapping[str, str],
             timeout: float) -> HookRun:
    """Run `command` with `sh -c`; on timeout its whole process group is killed (a hook
    that started children must not leave them running against the target)."""
    started = time.monotonic()
    proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, **extra_env}, start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    text = out.decode("utf-8", "replace")[-OUTPUT_TAIL:]
    return HookRun(phase, command, None if timed_out else proc.returncode, timed_out,
                   time.monotonic() - started, text)


class RestoreHooks:
    """The configured hooks of one restore job; every run is journaled on its stream."""

    def __init__(self, config: RestoreConfig, record: Callable[[ev.Event], object], *,
                 job_id: str, target: str, snapshot_id: str) -> None:
        self.config = config
        self.record = record
        self.job_id, self.target, self.snapshot_id = job_id, target, snapshot_id
        self.pre_ran = False

    def pre(self) -> None:
        """Run the pre_hook, if any; raises PreHookFailed when it fails or times out."""
        if not self.config.pre_hook:
            return
        run = self._run("pre", self.config.pre_hook, None)
        self.pre_ran = True
        if not run.ok:
            raise PreHookFailed(command=run.command, how=run.how())

    def post(self, status: str) -> dict[str, object] | None:
        """Run the post_hook, if any; its failure comes back as a warning record."""
        if not self.config.post_hook:
            return None
        run = self._run("post", self.config.post_hook, status)
        return None if run.ok else run.warning()

    def _run(self, phase: Phase, command: str, status: str | None) -> HookRun:
        run = run_hook(command, phase, hook_env(phase, job_id=self.job_id, target=self.target,
                                                snapshot_id=self.snapshot_id, status=status),
                       self.config.hook_timeout)
        self.record(run.event(self.job_id))
        return run
