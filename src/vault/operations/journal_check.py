"""The journal checked against the repository (docs/journal.md#anchors).

Three checks, each catching what the others cannot:
- the hash chain of the current segment (an edited, deleted, reordered or inserted row);
- the anchors sealed in the repository (a truncated tail, a deleted journal, a chain
  re-hashed by someone who can write the journal file but has no repository key);
- the snapshots: one the journal recorded made but the repository lost, and one the
  repository has that this journal never saw (another host's, or a record lost here).

Tampering is journaled as JournalTamperingDetected, appended after everything as it was
found: that event opens a fresh segment, and the anchor written with it settles the
anchors before it. `vault status` alerts on it (and on lost snapshots) without the key.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vault.errors import VaultError
from vault.journal.audit import (
    TAMPERING_EVENT,
    hash_at,
    recorded_snapshots,
    segment_start,
    verify_segment,
)
from vault.journal.chain import ChainVerification, format_time
from vault.journal.events import JournalTamperingDetected, SnapshotForgotten
from vault.journal.queries import events_of_type, parse_time
from vault.planning.status_report import Alert
from vault.repository.anchors import (
    JournalAnchor,
    current_anchors,
    load_anchors,
    remove_anchor,
    save_anchor,
)
from vault.repository.repository import Repository
from vault.runtime.app import Vault
from vault.storage.base import Storage

#: how long `vault status` shows a recorded tampering
TAMPERING_ALERT_WINDOW = timedelta(days=7)
#: lost snapshots named one by one in `vault status`; more are counted in one alert
_LOST_ALERTS = 5
#: anchors of one journal kept after a clean check. The chain links every older row to
#: the newest anchor, so older ones add nothing but guard against some being deleted;
#: without a limit every check would load one object per backup ever made.
KEEP_ANCHORS = 64


@dataclass
class JournalCheck:
    chain: ChainVerification
    segment_seq: int  # where the checked segment starts (1: no tampering recorded)
    repository_checked: bool = False
    anchors_checked: int = 0
    anchor_findings: list[str] = field(default_factory=list)
    trusted: tuple[int, str] | None = None  # newest anchor that agreed: (seq, hash)
    lost_snapshots: dict[str, int] = field(default_factory=dict)  # id -> seq recorded
    unseen_snapshots: list[str] = field(default_factory=list)
    tampering_seq: int | None = None  # the JournalTamperingDetected this check appended
    anchors: list[JournalAnchor] = field(default_factory=list)  # those compared
    anchor_error: str | None = None  # why no anchor was written (a read-only repository)

    @property
    def tampered(self) -> bool:
        return not self.chain.ok or bool(self.anchor_findings)

    @property
    def findings(self) -> list[str]:
        """What is wrong with the journal itself, most telling first."""
        chain = ([] if self.chain.ok
                 else [f"chain broken at seq {self.chain.first_bad_seq}: {self.chain.reason}"])
        return chain + self.anchor_findings

    @property
    def problems(self) -> list[str]:
        """Everything that makes the check fail: the findings, then lost snapshots."""
        return self.findings + [lost_message(sid, seq)
                                for sid, seq in self.lost_snapshots.items()]


def lost_message(snapshot_id: str, seq: int) -> str:
    return (f"snapshot {snapshot_id[:8]} is missing from the repository, although the "
            f"journal recorded it made (seq {seq})")


def journal_ref(vault: Vault) -> str:
    """Which journal an anchor belongs to: the host and the journal file. A journal
    deleted and recreated in place keeps its name, so its anchors still apply. (Not the
    OS user: `$USER` differs between cron, sudo and a login for the same file.)"""
    return f"{socket.gethostname()}:{vault.config.journal_path().resolve()}"


def anchor_head(vault: Vault, repo: Repository, reason: str, *,
                snapshot_id: str | None = None,
                segment_seq: int | None = None) -> JournalAnchor:
    """Seal the journal's current head into the repository."""
    head_seq, head_hash = vault.journal.head()
    anchor = JournalAnchor(created=format_time(datetime.now(UTC)), journal=journal_ref(vault),
                           head_seq=head_seq, head_hash=head_hash, reason=reason,
                           snapshot_id=snapshot_id, segment_seq=segment_seq)
    save_anchor(repo, anchor)
    return anchor


def anchor_snapshot(vault: Vault, repo: Repository, snapshot_id: str) -> None:
    """Anchor the head once a snapshot's BackupCompleted is journaled. The snapshot is
    committed by then: an anchor that cannot be written only weakens the next check
    (the next verify anchors again), so it must not fail the backup."""
    with contextlib.suppress(VaultError):
        anchor_head(vault, repo, "snapshot", snapshot_id=snapshot_id)


def check_journal(vault: Vault, repo: Repository | None) -> JournalCheck:
    """Check the chain, and with a repository its anchors and snapshots. Writes nothing."""
    path = vault.config.journal_path()
    vault.journal.head()  # opens (or, deleted, recreates) the journal file first
    start = segment_start(path)
    check = JournalCheck(chain=verify_segment(path, start), segment_seq=start)
    if repo is not None:
        check.repository_checked = True
        _check_anchors(check, vault, repo)
        _check_snapshots(check, vault, repo)
    return check


def _check_anchors(check: JournalCheck, vault: Vault, repo: Repository) -> None:
    path = vault.config.journal_path()
    # Anchors before the head: one a running backup writes meanwhile is then either not
    # loaded or below the head read after it, never above a head read too early.
    anchors = current_anchors(load_anchors(repo, journal_ref(vault)))
    head_seq = vault.journal.head_seq()
    check.anchors, check.anchors_checked = anchors, len(anchors)
    for anchor in sorted(anchors, key=lambda a: a.head_seq, reverse=True):
        if anchor.head_seq == 0:
            continue
        if head_seq < anchor.head_seq:
            check.anchor_findings.append(
                f"journal ends at seq {head_seq} but {anchor.label} recorded head seq "
                f"{anchor.head_seq}")
            continue
        found = hash_at(path, anchor.head_seq)
        if found != anchor.head_hash:
            check.anchor_findings.append(
                f"journal seq {anchor.head_seq} has hash {(found or 'none')[:12]} but "
                f"{anchor.label} recorded {anchor.head_hash[:12]} (the chain was rewritten)")
        elif check.trusted is None:
            check.trusted = (anchor.head_seq, anchor.head_hash)


def _check_snapshots(check: JournalCheck, vault: Vault, repo: Repository) -> None:
    check.lost_snapshots, check.unseen_snapshots = compare_snapshots(
        vault.config.journal_path(), repo.id, repo.storage)


def compare_snapshots(journal_path: Path, repo_id: str,
                      storage: Storage) -> tuple[dict[str, int], list[str]]:
    """(lost: {id: seq the journal recorded it made}, unseen ids) — needs no key.

    The journal is read before the listing, so a backup committing meanwhile is at worst
    unseen (a note), and again after it only for the lost, so a `forget` journaled
    meanwhile does not count as a loss either."""
    before = recorded_snapshots(journal_path, repo_id)
    present = {info.name for info in storage.list("snapshots")}
    after = recorded_snapshots(journal_path, repo_id) if before.keys() - present else before
    lost = {sid: seq for sid, seq in before.items() if sid not in present and sid in after}
    return lost, sorted(present - before.keys() - after.keys())


def record_check(vault: Vault, repo: Repository | None, check: JournalCheck) -> None:
    """Journal tampering as JournalTamperingDetected (a fresh segment), then anchor the
    head: a clean journal's as is, a tampered one's only with the segment that records it."""
    segment: int | None = None
    if check.tampered:
        head_seq, head_hash = vault.journal.head()
        recorded = vault.journal.append("journal", JournalTamperingDetected(
            repo_id=repo.id if repo is not None else None, findings=check.findings[:100],
            first_bad_seq=check.chain.first_bad_seq, found_head_seq=head_seq,
            found_head_hash=head_hash,
            trusted_seq=check.trusted[0] if check.trusted else None,
            trusted_hash=check.trusted[1] if check.trusted else None))
        if recorded.seq == 0:
            return  # spooled (the journal cannot be written): nothing to anchor yet
        check.tampering_seq = segment = recorded.seq
    if repo is None:
        return
    try:
        anchor_head(vault, repo, "tampering" if segment else "verify", segment_seq=segment)
        if not check.tampered:
            _trim_anchors(repo, check.anchors)
    except VaultError as exc:  # a read-only repository: the check itself still stands
        check.anchor_error = exc.message


def _trim_anchors(repo: Repository, agreed: list[JournalAnchor]) -> None:
    """Remove all but the newest KEEP_ANCHORS - 1 of the anchors that just agreed (the
    one just written makes KEEP_ANCHORS). The anchor that opened the current segment
    stays: without it, the settled anchors before it would count again."""
    removable = [anchor for anchor in agreed if anchor.segment_seq is None]
    for anchor in removable[:max(0, len(removable) - (KEEP_ANCHORS - 1))]:
        remove_anchor(repo, anchor)


def forget_lost(vault: Vault, repo: Repository, check: JournalCheck) -> list[str]:
    """Accept the loss of the snapshots the repository lost: journal each as
    SnapshotForgotten, so they are no longer expected (nor alerted on). Returns their ids."""
    lost = sorted(check.lost_snapshots)
    if lost:
        vault.journal.append_many([("repository-" + repo.id, SnapshotForgotten(
            job_id=None, repo_id=repo.id, snapshot_id=sid,
            reason="lost: missing from the repository (journal verify --forget-lost)"))
            for sid in lost])
    check.lost_snapshots = {}
    return lost


def check_journal_agreement(vault: Vault, repo: Repository) -> JournalCheck:
    """`vault verify`'s journal step: check, journal any tampering, anchor the head."""
    check = check_journal(vault, repo)
    record_check(vault, repo, check)
    return check


def journal_alerts(vault: Vault, repo_id: str, now: datetime) -> list[Alert]:
    """`vault status`'s journal alerts, without the key: tampering recorded in the last
    week, and snapshots the journal recorded made that the repository no longer has."""
    path = vault.config.journal_path()
    alerts = []
    for row in events_of_type(path, TAMPERING_EVENT, limit=1,
                              since=format_time(now - TAMPERING_ALERT_WINDOW)):
        at = parse_time(row["recorded_at"])
        findings = row["payload"].get("findings") or ["(no detail)"]
        alerts.append(Alert(
            kind="journal_tampered", subject="journal",
            message=f"journal tampering detected {at:%Y-%m-%d %H:%M} (seq {row['seq']}): "
                    f"{findings[0]}"))
    lost = compare_snapshots(path, repo_id, vault.storage)[0]
    for sid, seq in list(lost.items())[:_LOST_ALERTS]:
        alerts.append(Alert(kind="snapshot_missing", subject=sid[:8],
                            message=lost_message(sid, seq)))
    if len(lost) > _LOST_ALERTS:
        alerts.append(Alert(kind="snapshot_missing", subject="snapshots",
                            message=f"{len(lost) - _LOST_ALERTS} more snapshots the journal "
                                    "recorded are missing from the repository"))
    return alerts
