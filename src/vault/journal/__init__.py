"""vault.journal: the append-only, tamper-evident record of everything vault did.

    from vault.journal import Journal, BackupRequested

    with Journal(default_journal_path()) as journal:
        journal.append(job_id, BackupRequested(job_id=job_id, ...))
        for recorded in journal.read(types=["BackupCompleted"], limit=10, descending=True):
            ...

See docs/journal.md for the schema, the hash chain and the projections.
"""

from vault.journal.chain import GENESIS_HASH, ChainVerification, format_time
from vault.journal.events import (
    EVENT_TYPES,
    BackupCompleted,
    BackupFailed,
    BackupProgressed,
    BackupRequested,
    BackupStarted,
    CommandFailed,
    Event,
    FileProblem,
    JournalVerified,
    KeyAdded,
    KeyChanged,
    KeyRemoved,
    Progress,
    ProjectionsRebuilt,
    RecordedEvent,
    RepositoryInitialized,
    RestoreCompleted,
    RestoreFailed,
    RestoreProgressed,
    RestoreRequested,
    RestoreStarted,
    SnapshotCorrupted,
    SnapshotForgotten,
    StaleLockRemoved,
    VerifyCompleted,
    VerifyFailed,
    VerifyProgressed,
    VerifyRequested,
    VerifyStarted,
    parse_event,
    register_upcaster,
)
from vault.journal.projections import PROJECTIONS, Projection
from vault.journal.store import Journal

__all__ = [
    "EVENT_TYPES",
    "GENESIS_HASH",
    "PROJECTIONS",
    "BackupCompleted",
    "BackupFailed",
    "BackupProgressed",
    "BackupRequested",
    "BackupStarted",
    "ChainVerification",
    "CommandFailed",
    "Event",
    "FileProblem",
    "Journal",
    "JournalVerified",
    "KeyAdded",
    "KeyChanged",
    "KeyRemoved",
    "Progress",
    "Projection",
    "ProjectionsRebuilt",
    "RecordedEvent",
    "RepositoryInitialized",
    "RestoreCompleted",
    "RestoreFailed",
    "RestoreProgressed",
    "RestoreRequested",
    "RestoreStarted",
    "SnapshotCorrupted",
    "SnapshotForgotten",
    "StaleLockRemoved",
    "VerifyCompleted",
    "VerifyFailed",
    "VerifyProgressed",
    "VerifyRequested",
    "VerifyStarted",
    "format_time",
    "parse_event",
    "register_upcaster",
]
