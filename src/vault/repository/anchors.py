"""Journal anchors: the journal's head, sealed into the repository.

The journal's hash chain shows an edited, deleted or inserted row, but not a truncated
tail, a deleted journal, or a chain whose every hash was recomputed by someone who can
write the journal file. An *anchor* (a sealed object of kind "anchors") records the
journal's head `(seq, hash)` at a moment: every snapshot commit writes one, and so does
every verify. Without the repository key nobody can forge or edit one, so a later journal
must still hold that row with that hash (docs/journal.md#anchors).

`journal` names the journal an anchor belongs to (host and journal path): a
repository shared by several hosts holds anchors of several journals, and each is only
compared with its own. `segment_seq` is set on the anchor written when tampering was
recorded: it opens a fresh segment, and the anchors written before it are settled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vault.repository.records import load_docs, remove_doc, save_doc

if TYPE_CHECKING:
    from vault.repository.repository import Repository

_AAD = b"vault-anchor-v1"
ANCHOR_VERSION = 1


@dataclass
class JournalAnchor:
    created: str  # UTC, ISO 8601: the order of one journal's anchors
    journal: str  # host:/path/of/journal.db
    head_seq: int
    head_hash: str
    reason: str  # "snapshot", "verify" or "tampering"
    snapshot_id: str | None = None  # the snapshot committed (reason "snapshot")
    segment_seq: int | None = None  # seq of the JournalTamperingDetected it anchors
    name: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        """How a message names this anchor."""
        if self.snapshot_id:
            return f"snapshot {self.snapshot_id[:8]}"
        when = self.created[:19].replace("T", " ")
        return f"the {self.reason} anchor of {when} ({self.name[:8]})"

    def to_doc(self) -> dict[str, Any]:
        return {"version": ANCHOR_VERSION, "created": self.created, "journal": self.journal,
                "head_seq": self.head_seq, "head_hash": self.head_hash,
                "reason": self.reason, "snapshot_id": self.snapshot_id,
                "segment_seq": self.segment_seq}


def save_anchor(repo: Repository, anchor: JournalAnchor) -> str:
    anchor.name = save_doc(repo, "anchors", _AAD, anchor.to_doc())
    return anchor.name


def remove_anchor(repo: Repository, anchor: JournalAnchor) -> None:
    remove_doc(repo, "anchors", anchor.name)


def load_anchors(repo: Repository, journal: str) -> list[JournalAnchor]:
    """Every readable anchor of `journal`, oldest first.

    One that does not open (damaged, or not sealed with this repository's key: a forgery)
    is skipped, as is a newer vault's; it proves nothing either way.
    """
    anchors = []
    for name, doc in load_docs(repo, "anchors", _AAD, ANCHOR_VERSION):
        if doc.get("journal") != journal:
            continue
        try:
            anchors.append(_from_doc(doc, name))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(anchors, key=lambda a: (a.created, a.head_seq, a.name))


def _from_doc(doc: dict[str, Any], name: str) -> JournalAnchor:
    snapshot_id, segment_seq = doc.get("snapshot_id"), doc.get("segment_seq")
    return JournalAnchor(
        created=str(doc["created"]), journal=str(doc["journal"]),
        head_seq=int(doc["head_seq"]), head_hash=str(doc["head_hash"]),
        reason=str(doc["reason"]),
        snapshot_id=None if snapshot_id is None else str(snapshot_id),
        segment_seq=None if segment_seq is None else int(segment_seq), name=name)


def current_anchors(anchors: list[JournalAnchor]) -> list[JournalAnchor]:
    """The anchors that still count: those from the newest fresh segment on."""
    starts = [i for i, anchor in enumerate(anchors) if anchor.segment_seq is not None]
    return anchors[starts[-1]:] if starts else anchors
