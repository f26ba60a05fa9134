"""One line per journal event, for the journal and job screens: what happened, in words,
without free text from hooks or commands and without whole nested payloads."""

from __future__ import annotations

from typing import Any

from vault.foundation.units import human_bytes

_ERROR_TYPES = {"JobInterrupted", "SnapshotCorrupted"}
_WARN_TYPES = {"StorageLow", "ScheduleRunMissed", "JobCancelled", "ScheduleRunSkipped"}
#: payload keys never shown in a summary line: free text from hooks or commands, and the
#: queued command's whole dict (the journal refuses secret keys, but not secret values)
_HIDDEN_KEYS = {"command", "output", "options", "definition", "summary"}


def event_level(type_name: str, payload: Any) -> str:
    """"error" for failures and damage, "warn" for partial outcomes, "" otherwise."""
    p = payload if isinstance(payload, dict) else {}
    if type_name.endswith("Failed") or type_name in _ERROR_TYPES:
        return "error"
    if type_name in ("JournalVerified", "VerifyCompleted") and p.get("ok") is False:
        return "error"
    status = p.get("status")
    if status == "failed":
        return "error"
    if status == "partial" or type_name in _WARN_TYPES or p.get("errors"):
        return "warn"
    return ""


def event_summary(type_name: str, payload: Any) -> str:
    """A one-line, secret-free description of an event's payload for a table row."""
    if not isinstance(payload, dict):
        return _clip(str(payload))
    p = _Fields(payload)
    if type_name.endswith("Progressed"):
        return _progress(p)
    if type_name.endswith("Failed") and "message" in p:
        return _clip(f"{p['error_kind']}: {p['message']}")
    describe = _SUMMARIES.get(type_name)
    if describe is not None:
        return _clip(describe(p))
    return _clip(", ".join(f"{k}={v}" for k, v in sorted(payload.items())
                           if k not in _HIDDEN_KEYS and isinstance(v, str | int | float)))


class _Fields(dict[str, Any]):
    """A payload whose missing keys read as "?" (an older or newer shape of the event)."""

    def __missing__(self, key: str) -> str:
        return "?"

    def id(self, key: str) -> str:
        return str(self[key])[:8]

    def size(self, key: str) -> str:
        value = self[key]
        return human_bytes(value) if isinstance(value, int) else "?"

    def count(self, key: str) -> int:
        value = self[key]
        return len(value) if isinstance(value, list | dict) else 0


def _progress(p: _Fields) -> str:
    total = f" of {p.size('bytes_total')}" if p["bytes_total"] not in (None, "?") else ""
    items = f", {p['items_done']} item(s)" if p["items_done"] != "?" else ""
    rate = p["rate_bps"]
    speed = f", {human_bytes(int(rate))}/s" if isinstance(rate, int | float) and rate else ""
    return f"{p['phase']}: {p.size('bytes_done')}{total}{items}{speed}"


def _problems(p: _Fields, key: str = "errors") -> str:
    n = p.count(key)
    return f", {n} problem(s)" if n else ""


def _backup_requested(p: _Fields) -> str:
    what = p["source"] if p["source"] not in (None, "?") else ", ".join(p["paths"] or [])
    tags = f" tags {','.join(p['tags'])}" if p["tags"] and p["tags"] != "?" else ""
    return f"{what} ({p['source_type']}){tags}"


def _journal_verified(p: _Fields) -> str:
    if p["ok"] is True:
        return f"hash chain intact, {p['events_checked']} events"
    return f"hash chain broken at seq {p['first_bad_seq']}: {p['reason']}"


_SUMMARIES: dict[str, Any] = {
    "RepositoryInitialized": lambda p: f"repository {p['repository']}",
    "KeyAdded": lambda p: f"key {p.id('key_id')} added"
                          + (f" ({p['label']})" if p["label"] else ""),
    "KeyRemoved": lambda p: f"key {p.id('key_id')} removed",
    "KeyChanged": lambda p: f"key {p.id('old_key_id')} replaced by {p.id('new_key_id')}",
    "StaleLockRemoved": lambda p: f"stale lock of {p['holder']} removed",
    "StorageLow": lambda p: f"{p.size('used_bytes')} of {p.size('quota_bytes')} used",
    "StorageRecovered": lambda p: f"{p.size('used_bytes')} of {p.size('quota_bytes')} used",
    "BackupRequested": _backup_requested,
    "BackupStarted": lambda p: "started" + (f", parent {p.id('parent')}" if p["parent"]
                                            else ", full"),
    "BackupCompleted": lambda p: f"snapshot {p.id('snapshot_id')} {p['status']}: "
                                 f"{p.size('bytes_raw')}, {p.size('bytes_new')} new"
                                 + _problems(p),
    "BackupGroupCompleted": lambda p: f"group {p['group'] or p['group_id']} {p['status']}: "
                                      f"{p.count('sources')} source(s)",
    "RestoreRequested": lambda p: f"{p['snapshot_ref']} -> {p['target']}",
    "RestoreStarted": lambda p: f"snapshot {p.id('snapshot_id')}",
    "RestoreReported": lambda p: f"{p['restored']} restored, {p['skipped']} skipped, "
                                 f"{p['failed']} failed, {p['conflicts']} conflict(s)",
    "RestoreCompleted": lambda p: f"{p['files_restored']} file(s) restored to {p['target']}, "
                                  f"{p.size('bytes_written')}" + _problems(p),
    "RestoreUndoable": lambda p: f"undo snapshot {p.id('undo_snapshot_id')} kept",
    "RestoreUndone": lambda p: f"undone: {p['restored']} restored, {p['removed']} removed",
    "RestoreHookRan": lambda p: f"{p['phase']} hook exited {p['exit_code']}"
                                + (" (timed out)" if p["timed_out"] is True else ""),
    "VerifyRequested": lambda p: "read data" if p["read_data"] is True else "structure",
    "VerifyStarted": lambda p: "started",
    "VerifyCompleted": lambda p: f"{'ok' if p['ok'] is True else 'DAMAGED'}: "
                                 f"{p['snapshots_checked']} snapshot(s), "
                                 f"{p['packs_checked']} pack(s) read" + _problems(p, "problems"),
    "JobQueued": lambda p: f"attempt {p['attempt']}: {p['summary']}",
    "JobClaimed": lambda p: f"worker {p['host']}:{p['pid']}, attempt {p['attempt']}",
    "JobInterrupted": lambda p: f"{p['reason']}"
                                + (", will retry" if p["will_retry"] is True else ""),
    "JobCancelled": lambda p: "cancelled",
    "SnapshotCorrupted": lambda p: f"snapshot {p.id('snapshot_id')}: {p['reason']} "
                                   f"({p.count('paths')} path(s))",
    "SnapshotForgotten": lambda p: f"snapshot {p.id('snapshot_id')}: {p['reason']}",
    "SnapshotExported": lambda p: f"snapshot {p.id('snapshot_id')} to {p['file']}",
    "SnapshotImported": lambda p: f"{p['file']} as snapshot {p.id('snapshot_id')}",
    "CommandFailed": lambda p: f"{p['command']}: {p['error_kind']}: {p['message']}",
    "JournalVerified": _journal_verified,
    "ProjectionsRebuilt": lambda p: f"from {p['events_replayed']} events",
    "NotificationSent": lambda p: f"{p['channel']} to {p['target']}: {p['title']}",
    "NotificationFailed": lambda p: f"{p['channel']} to {p['target']}: {p['error']}",
    "ScheduleRunQueued": lambda p: f"{p['name']}: {p.count('job_ids')} job(s) for {p['due']}",
    "ScheduleRunMissed": lambda p: f"{p['name']}: {p['missed_count']} run(s) missed",
    "ScheduleRunCompleted": lambda p: f"{p['name']}: {p['status']}",
    "ScheduleRetentionApplied": lambda p: f"{p['name']}: {p.count('removed')} removed, "
                                          f"{p['kept']} kept",
    "PruneCompleted": lambda p: f"{p.size('bytes_freed')} freed, "
                                f"{p['packs_deleted']} pack(s) deleted",
}


def _clip(text: str, width: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1] + "…"
