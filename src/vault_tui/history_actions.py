"""What the history and journal screens change: forget and export snapshots, verify the
journal's hash chain.

Forget and export are short repository operations that `vault forget` and `vault export`
run inline, not jobs a worker runs; the TUI runs them the same way, in one of its worker
threads, through the same core functions (vault.operations.manage, vault.operations.export),
so they are journaled exactly as the CLI journals them (SnapshotForgotten,
SnapshotExported, CommandFailed when they fail). Verifying the snapshots' data is a job:
the screen queues it for `vault worker` (vault_tui.actions). Nothing here imports Textual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from vault.config.secrets import Secret, SecretRef, resolve_secret
from vault.errors import UsageError, VaultError
from vault.foundation.progress import NullReporter
from vault.operations import manage
from vault.operations.export import repository_key, run_export
from vault.runtime.app import Vault
from vault.transfer.writer import ExportKey
from vault_tui.context import TuiContext
from vault_tui.data.history import SnapshotRow
from vault_tui.data.journal import read_event


def _unlocked(ctx: TuiContext) -> None:
    """Ask for the passphrase first (PassphraseNeeded) when none is known yet, so a
    wrong one is asked again rather than failing the operation."""
    ctx.repository()


def forget(ctx: TuiContext, snapshot_ids: list[str]) -> list[str]:
    """`vault forget ID...`: remove the snapshots (all found first, or none removed);
    their data stays until prune. Returns the ids removed."""
    _unlocked(ctx)
    with ctx.vault() as vault:
        try:
            removed = manage.forget_snapshots(vault, snapshot_ids)
        except VaultError as exc:
            vault.record_failure("tui forget", exc.kind, exc.message)
            raise
    return [snapshot.id for snapshot in removed]


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (short id, message)


def export_file_name(row: SnapshotRow) -> str:
    """`<source>-<short id>.vault`: one file per snapshot, named so a directory of them
    reads well and two snapshots never share a name."""
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", row.name).strip("._") or "snapshot"
    return f"{label[:40]}-{row.short_id}.vault"


def export(ctx: TuiContext, rows: list[SnapshotRow], directory: Path,
           password_file: Path | None) -> ExportResult:
    """`vault export ID -o DIR/<name>.vault [--password-file F]` for each snapshot. One
    failing (a settings snapshot is refused, a file exists) does not stop the others."""
    _unlocked(ctx)
    result = ExportResult()
    with ctx.vault() as vault:
        try:
            target, passphrase = _export_target(directory, password_file)
        except VaultError as exc:
            vault.record_failure("tui export", exc.kind, exc.message)
            raise
        for row in rows:
            try:
                # Encrypted either way: with the file's passphrase, else the repository's.
                key = repository_key(vault) if passphrase is None else ExportKey(passphrase)
                outcome = run_export(vault, row.snapshot_id, target / export_file_name(row),
                                     key, NullReporter())
            except VaultError as exc:
                vault.record_failure("tui export", exc.kind, exc.message)
                result.failed.append((row.short_id, exc.message))
                continue
            result.files.append(outcome.path)
    return result


def _export_target(directory: Path, password_file: Path | None) -> tuple[Path, Secret | None]:
    target = directory.expanduser()
    if not target.is_dir():
        raise UsageError(f"{target} is not a directory")
    if password_file is None:
        return target, None
    return target, resolve_secret(SecretRef(file=password_file.expanduser()),
                                  "export passphrase")


@dataclass(frozen=True)
class ChainStatus:
    """`vault journal verify`'s outcome, with the hash the chain was checked up to."""

    ok: bool
    events_checked: int
    first_bad_seq: int | None
    reason: str | None
    last_good_seq: int
    last_good_hash: str | None


def verify_journal(ctx: TuiContext) -> ChainStatus:
    """Walk the journal's hash chain and journal the outcome (JournalVerified), as
    `vault journal verify` does."""
    with ctx.vault() as vault:
        return _verify(vault)


def _verify(vault: Vault) -> ChainStatus:
    journal = vault.journal
    result = journal.verify()
    journal.append("journal", result.to_event())
    # Rows 1..n-1 were sound when row n (the bad one, counted) broke the chain.
    last_good = result.events_checked - (0 if result.ok else 1)
    event = read_event(journal.path, last_good) if last_good else None
    return ChainStatus(ok=result.ok, events_checked=result.events_checked,
                       first_bad_seq=result.first_bad_seq, reason=result.reason,
                       last_good_seq=last_good, last_good_hash=event.hash if event else None)
