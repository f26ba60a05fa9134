"""The repository: keys, config, index, blobs, trees and snapshots on a Storage.

Write order is packs -> index -> snapshot (see docs/format.md). Every read is checked:
objects are authenticated by AES-GCM, and blobs are re-hashed against their id.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from vault import __version__
from vault.errors import (
    IntegrityError,
    ObjectNotFound,
    RepositoryExists,
    SnapshotDamaged,
    SnapshotNotFound,
    UnsupportedFormat,
    UsageError,
    WrongPassphrase,
)
from vault.repository.blob import BlobEntry, BlobType
from vault.repository.chunker import ChunkerParams
from vault.repository.compress import decompress
from vault.repository.condemned import condemned_packs, load_records, rescue_pinned
from vault.repository.crypto import Cipher, DecryptionFailed, MasterKey, storage_id
from vault.repository.damage import Damage, DamageRecord, save_record
from vault.repository.damage import load_records as load_damage_records
from vault.repository.index import IndexFormatError, MasterIndex, decode_index, encode_index
from vault.repository.keys import KeyFile, parse_key_file, unwrap_master_key, wrap_master_key
from vault.repository.pack import PackFormatError, header_length, parse_header, trailer_size
from vault.repository.repo_config import FORMAT_VERSION as FORMAT_VERSION  # re-exported
from vault.repository.repo_config import read_config as read_config  # re-exported
from vault.repository.snapshot import SNAPSHOT_VERSION, Snapshot
from vault.repository.snapshot_ref import SnapshotCriteria, holds_in_paths, resolve_snapshot
from vault.repository.tree import (
    InvalidTree,
    Node,
    TreeLimitExceeded,
    TreeTooLarge,
    decode_tree,
)
from vault.repository.tree_limits import check_tree_limits
from vault.storage.base import ObjectKind, Storage
from vault.storage.cache import metadata_cache

#: FastCDC's limits (pyfastcdc refuses a maximum chunk, 4 x average, above 16 MiB)
MIN_CHUNK_AVG = 64 << 10
MAX_CHUNK_AVG = 4 << 20
_SNAPSHOT_AAD = b"vault-snapshot-v1"
#: listings of the index tried when a prune replaces index files during the load
_INDEX_LOAD_ATTEMPTS = 5


class Repository:
    """An unlocked repository. Create with `Repository.init` or `Repository.open`."""

    def __init__(self, storage: Storage, config: dict[str, Any], master: MasterKey,
                 key_id: str) -> None:
        self.storage = storage
        self.config = config
        self.key_id = key_id
        self.cipher = Cipher(master)
        self._master = master
        #: damaged copies, from the records in the repository and found in this session
        self.damage = Damage()
        self.index = MasterIndex(self.damage)
        #: damage found by reads in this session, not yet saved (`save_found_damage`)
        self.found_damage = DamageRecord(found_by="")
        self.damage_lock = threading.Lock()
        self._index_loaded = False
        self.index_errors: list[IntegrityError] = []
        #: blobs the snapshot being built relies on (stored or deduplicated); checked
        #: against condemned packs when the snapshot is saved (see condemned.py)
        self.pinned_blobs: set[bytes] = set()
        #: indexed packs storage did not hold at the last `unindexed_packs` listing
        self.missing_packs: list[str] = []

    # --- opening ------------------------------------------------------------------

    @property
    def id(self) -> str:
        return str(self.config["id"])

    @property
    def location(self) -> str:
        return self.storage.location

    @property
    def chunker_params(self) -> ChunkerParams:
        c = self.config["chunker"]
        return ChunkerParams(avg_size=c["avg"], min_size=c["min"], max_size=c["max"])

    @property
    def chunker_seed(self) -> int:
        return self._master.chunker_seed

    @classmethod
    def init(cls, storage: Storage, passphrase: str, *, chunk_avg: int = 1 << 20,
             label: str | None = None, chunker_of: Repository | None = None) -> Repository:
        """A new repository. `chunker_of`: cut chunks exactly as that repository does (its
        parameters and seed), so copies between the two store each chunk once and a backup
        here deduplicates against copied data (`vault init --copy-chunker-params-from`)."""
        if chunker_of is None and not MIN_CHUNK_AVG <= chunk_avg <= MAX_CHUNK_AVG:
            raise UsageError(f"average chunk size must be between {MIN_CHUNK_AVG >> 10} and "
                             f"{MAX_CHUNK_AVG >> 10} KiB, not {chunk_avg >> 10} KiB")
        if storage.exists("config", "config"):
            raise RepositoryExists(repo=storage.location)
        storage.create()
        params = chunker_of.chunker_params if chunker_of else ChunkerParams.for_average(chunk_avg)
        config = {
            "format": "vault-repository",
            "version": FORMAT_VERSION,
            "id": secrets.token_hex(32),
            "created": datetime.now(UTC).isoformat(),
            "chunker": {"algorithm": "fastcdc2020", "avg": params.avg_size,
                        "min": params.min_size, "max": params.max_size},
            "blob_id": "hmac-sha256",
            "encryption": "aes-256-gcm",
            "compression": "zstd",
        }
        master = MasterKey.generate()
        if chunker_of is not None:
            master = replace(master, chunker_seed=chunker_of.chunker_seed)
        key_bytes = wrap_master_key(master, passphrase, label)
        key_id = storage_id(key_bytes)
        # The key first: a config without a key would be a repository nobody can open.
        storage.save("keys", key_id, key_bytes)
        storage.save("config", "config", json.dumps(config, indent=1).encode())
        return cls(storage, config, master, key_id)

    @classmethod
    def open(cls, storage: Storage, passphrase: str) -> Repository:
        config = read_config(storage)
        for key in list_key_files(storage):
            master = unwrap_master_key(key, passphrase)
            if master is not None:
                return cls(storage, config, master, key.key_id)
        raise WrongPassphrase(repo=storage.location)

    # --- keys ---------------------------------------------------------------------

    def add_key(self, passphrase: str, label: str | None = None) -> str:
        key_bytes = wrap_master_key(self._master, passphrase, label)
        key_id = storage_id(key_bytes)
        self.storage.save("keys", key_id, key_bytes)
        return key_id

    def remove_key(self, key_id: str) -> None:
        if key_id == self.key_id:
            raise UsageError("refusing to remove the key this session is using; "
                             "open the repository with another key first")
        self.storage.remove("keys", key_id)

    # --- index --------------------------------------------------------------------

    def load_index(self) -> MasterIndex:
        """The merged index; a damaged index file is skipped and kept in `index_errors`
        (its packs are then unindexed, and their blobs found again by pack recovery)."""
        if not self._index_loaded:
            # Damage records first: the index leaves out every copy they name.
            for record in load_damage_records(self):
                self.damage.add(record)
            for attempt in range(_INDEX_LOAD_ATTEMPTS):
                try:
                    self._merge_listed_index_files()
                    break
                except ObjectNotFound:
                    # A prune replaced the index while we read it (its new files are
                    # written before the old ones go): list again, from scratch.
                    if attempt == _INDEX_LOAD_ATTEMPTS - 1:
                        raise
                    self.index, self.index_errors = MasterIndex(self.damage), []
            self._index_loaded = True
        return self.index

    def _merge_listed_index_files(self) -> None:
        for info in self.storage.list("index"):
            try:
                self._merge_index_file(info.name)
            except IntegrityError as exc:
                self.index_errors.append(exc)

    def _merge_index_file(self, name: str) -> None:
        try:
            for pack_id, size, entries in decode_index(self.cipher,
                                                       self.storage.load("index", name)):
                self.index.add_pack(pack_id, size, entries)
        except IndexFormatError as exc:
            raise IntegrityError(what=f"index {name[:12]}", repo=self.location,
                                 detail=str(exc)) from exc
        self.index.index_files.add(name)

    def reload_index(self) -> MasterIndex:
        """Forget the loaded index and damage records, and read them again (after a
        repair replaced them)."""
        self.damage = Damage()
        self.index = MasterIndex(self.damage)
        self.index_errors = []
        self._index_loaded = False
        return self.load_index()

    def refresh_index(self) -> int:
        """Merge index files written since the index was loaded (by other processes)."""
        self.load_index()
        new = [i.name for i in self.storage.list("index") if i.name not in self.index.index_files]
        merged = 0
        for name in new:
            try:
                self._merge_index_file(name)
            except ObjectNotFound:
                continue  # written and replaced by a prune since the listing
            merged += 1
        return merged

    def write_index(self, packs: dict[str, tuple[int, list[BlobEntry]]]) -> str:
        data = encode_index(self.cipher, packs)
        name = storage_id(data)
        self.storage.save("index", name, data)
        for pack_id, (size, entries) in packs.items():
            self.index.add_pack(pack_id, size, entries)
        self.index.index_files.add(name)
        return name

    def unindexed_packs(self) -> list[str]:
        """Packs in storage that no index names: left by a killed backup.

        Packs prune has condemned are not among them: putting those back in the index
        would undo the garbage collection (the records are read after the index, so a
        pack leaves the index only once its record is there to be seen).
        Indexed packs that storage no longer holds are noted as damage on the way (the
        same listing), so a backup never deduplicates against a pack that is gone.
        """
        self.load_index()
        condemned = condemned_packs(load_records(self))
        stored = {p.name for p in self.storage.list("data")}
        self.missing_packs = sorted(p for p in self.index.pack_sizes
                                    if p not in stored and p not in condemned)
        for pack_id in self.missing_packs:
            if pack_id not in self.damage.bad_packs:
                self.note_damaged_pack(pack_id, "missing")
        return sorted(p for p in stored if not self.index.has_pack(p) and p not in condemned)

    def read_pack_header(self, pack_id: str) -> tuple[int, list[BlobEntry]]:
        """(size, entries) of a stored pack, reading only its tail."""
        size = self.storage.stat("data", pack_id).size
        tsize = trailer_size()
        try:
            hlen = header_length(self.storage.load("data", pack_id, size - tsize, tsize))
            if hlen + tsize > size:
                raise PackFormatError("header length out of range")
            sealed = self.storage.load("data", pack_id, size - tsize - hlen, hlen)
            return size, parse_header(self.cipher, pack_id, sealed)
        except (PackFormatError, ValueError) as exc:
            raise IntegrityError(what=f"pack {pack_id[:12]}", repo=self.location,
                                 detail=str(exc)) from exc

    def recover_unindexed_packs(self) -> int:
        """Index packs a killed backup wrote but never indexed, so their data is reused.

        Damaged leftovers (a pack is only ever saved whole, so this means tampering)
        are skipped here and reported by `vault verify`.
        """
        recovered: dict[str, tuple[int, list[BlobEntry]]] = {}
        for pack_id in self.unindexed_packs():
            try:
                recovered[pack_id] = self.read_pack_header(pack_id)
            except IntegrityError:
                continue
        if recovered:
            self.write_index(recovered)
        return len(recovered)

    # --- blobs and trees ----------------------------------------------------------

    def open_blob(self, entry: BlobEntry, sealed: bytes | memoryview) -> bytes:
        """Decrypt, decompress and authenticate one blob read from its pack."""
        try:
            plain = self.cipher.open(sealed, entry.blob_id)
            data = decompress(plain, entry.raw_length) if entry.compressed else plain
        except (DecryptionFailed, Exception) as exc:
            raise IntegrityError(what=f"blob {entry.blob_id.hex()[:12]}", repo=self.location,
                                 detail=f"in pack {entry.pack_id[:12]}: {exc}") from exc
        if len(data) != entry.raw_length or self.cipher.blob_id(data) != entry.blob_id:
            raise IntegrityError(what=f"blob {entry.blob_id.hex()[:12]}", repo=self.location,
                                 detail=f"in pack {entry.pack_id[:12]}: content hash mismatch")
        return data

    def find_blob(self, blob_id: bytes) -> BlobEntry:
        entry = self.load_index().get(blob_id)
        if entry is None:
            reason = self.damage.reason(blob_id)
            detail = (f"damaged ({reason}); run `vault repair packs`, or back up the source "
                      "again" if reason else "not in any index")
            raise IntegrityError(what=f"blob {blob_id.hex()[:12]}", repo=self.location,
                                 detail=detail)
        return entry

    def load_blob(self, blob_id: bytes) -> bytes:
        """One blob, read and checked. A copy found bad (or whose pack is gone) is noted
        in `found_damage`, for the operation to remember with `save_found_damage`."""
        entry = self.find_blob(blob_id)
        try:
            return self.read_blob(entry)
        except ObjectNotFound as exc:
            self.note_damaged_pack(entry.pack_id, "missing")
            self.note_damaged_copy(blob_id, entry.pack_id, "pack missing")
            raise IntegrityError(what=f"pack {entry.pack_id[:12]}", repo=self.location,
                                 detail="missing") from exc
        except IntegrityError as exc:
            self.note_damaged_copy(blob_id, entry.pack_id, str(exc.fields["detail"]))
            raise

    def read_blob(self, entry: BlobEntry) -> bytes:
        """The blob at `entry`, read from its pack and authenticated (ObjectNotFound,
        IntegrityError). A tree blob goes through the local metadata cache when there is
        one (storage/cache.py), so walks cross the network once: only a copy that
        authenticated is kept, and a kept copy that no longer does is dropped and read
        from the repository instead — a damaged cache is never damage in the repository."""
        cache = metadata_cache(self.storage) if entry.blob_type == BlobType.TREE else None
        where: tuple[ObjectKind, str, int, int] = ("data", entry.pack_id, entry.offset,
                                                   entry.length)
        if cache is not None and (kept := cache.cached_range(*where)) is not None:
            try:
                return self.open_blob(entry, kept)
            except IntegrityError:
                cache.forget_range(*where)
        sealed = self.storage.load(*where)
        plain = self.open_blob(entry, sealed)
        if cache is not None:
            cache.keep_range(*where, sealed)
        return plain

    # --- damage (damage.py) -------------------------------------------------------

    def note_damaged_copy(self, blob_id: bytes, pack_id: str, reason: str) -> None:
        with self.damage_lock:
            self.found_damage.blobs[blob_id.hex()] = (pack_id, reason)

    def note_damaged_pack(self, pack_id: str, reason: str) -> None:
        with self.damage_lock:
            self.found_damage.packs[pack_id] = reason

    def storage_has_damage_records(self) -> bool:
        if self._index_loaded:
            return bool(self.damage.records)
        return any(True for _ in self.storage.list("damaged"))

    def save_found_damage(self, found_by: str, job_id: str | None = None,
                          snapshots: dict[str, dict[str, list[str]]] | None = None,
                          ) -> DamageRecord | None:
        """Remember the damage this session found: save a record (so no later backup
        reuses a bad copy) and leave the bad copies out of this session's index too.
        Returns the record, or None when nothing was found."""
        with self.damage_lock:
            record, self.found_damage = self.found_damage, DamageRecord(found_by="")
        if not (record or record.headers or snapshots):
            return None
        record.found_by, record.job_id = found_by, job_id
        record.snapshots = snapshots or {}
        save_record(self, record)
        self.damage.add(record)
        self.index.drop_bad_copies(self.damage)
        return record

    def load_tree(self, tree_id: bytes) -> list[Node]:
        try:
            return decode_tree(self.load_blob(tree_id))
        except TreeTooLarge as exc:
            raise TreeLimitExceeded(tree=tree_id.hex()[:12], detail=str(exc)) from exc
        except InvalidTree as exc:
            raise IntegrityError(what=f"tree {tree_id.hex()[:12]}", repo=self.location,
                                 detail=str(exc)) from exc

    # --- snapshots ----------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> str:
        """Save a snapshot whose blobs are all indexed. Condemned packs holding blobs it
        relies on (`pinned_blobs`) are re-indexed before and after the save, so a prune
        running meanwhile never deletes them (docs/prune.md)."""
        rescue_pinned(self, self.pinned_blobs)
        snapshot_id = self._save_snapshot_object(snapshot)
        rescue_pinned(self, self.pinned_blobs)
        return snapshot_id

    def _save_snapshot_object(self, snapshot: Snapshot) -> str:
        # json with ASCII escapes, not pydantic's encoder: a path that is not valid UTF-8
        # (a lone surrogate in Python) must survive exactly, as \udcXX.
        doc = json.dumps(snapshot.stored_doc(), ensure_ascii=True)
        data = self.cipher.seal(doc.encode(), _SNAPSHOT_AAD)
        snapshot.id = storage_id(data)
        self.storage.save("snapshots", snapshot.id, data)
        return snapshot.id

    def load_snapshot(self, snapshot_id: str) -> Snapshot:
        try:
            sealed = self.storage.load("snapshots", snapshot_id)
            if storage_id(sealed) != snapshot_id:
                raise DecryptionFailed("name does not match content hash")
            doc = json.loads(self.cipher.open(sealed, _SNAPSHOT_AAD))
            version = int(doc.get("version", 0))
            if version > SNAPSHOT_VERSION:
                raise UnsupportedFormat(repo=self.location, version=f"{version} (snapshot "
                                        f"{snapshot_id[:8]})", supported=SNAPSHOT_VERSION)
            snap = Snapshot.model_validate(doc)
        except (DecryptionFailed, ValueError, AttributeError) as exc:
            raise IntegrityError(what=f"snapshot {snapshot_id[:12]}", repo=self.location,
                                 detail=str(exc)) from exc
        snap.id = snapshot_id
        return snap

    def snapshots(self) -> list[Snapshot]:
        """Every readable snapshot, oldest first (damaged ones: see `load_snapshots`)."""
        return self.load_snapshots()[0]

    def load_snapshots(self) -> tuple[list[Snapshot], dict[str, IntegrityError]]:
        """(readable snapshots oldest first, {snapshot id: error} of the damaged ones).

        One damaged snapshot object must not hide the others from listing and restore.
        """
        snaps: list[Snapshot] = []
        damaged: dict[str, IntegrityError] = {}
        for info in self.storage.list("snapshots"):
            try:
                snaps.append(self.load_snapshot(info.name))
            except IntegrityError as exc:
                damaged[info.name] = exc
            except ObjectNotFound:
                continue  # forgotten by another process since the listing
        return sorted(snaps, key=lambda s: (s.time, s.id)), damaged

    def find_snapshot(self, ref: str, criteria: SnapshotCriteria | None = None) -> Snapshot:
        """`latest`, a full id, or a unique id prefix (at least 4 characters), narrowed by
        `criteria`. `latest` is the newest snapshot of one source, or the newest holding
        `criteria.path`; never a restore's safety copy (vault.repository.snapshot_ref)."""
        snapshots, damaged = self.load_snapshots()
        try:
            return resolve_snapshot(snapshots, ref, criteria or SnapshotCriteria(),
                                    self.holds_path, self.location)
        except SnapshotNotFound:
            # An id (prefix) that only a damaged snapshot file matches: say so, rather
            # than that no snapshot matches.
            named = [s for s in damaged if len(ref) >= 4 and s.startswith(ref)]
            if len(named) == 1:
                raise SnapshotDamaged(snapshot=named[0][:8], snapshot_id=named[0],
                                      repo=self.location,
                                      detail=str(damaged[named[0]].fields["detail"])
                                      ) from None
            raise

    def holds_path(self, snapshot: Snapshot, path: str) -> bool:
        """Whether `path` (absolute) is a file or directory in the snapshot's tree."""
        known = holds_in_paths(snapshot, path)
        if known is not None:
            return known
        tree: bytes | None = bytes.fromhex(snapshot.tree)
        for part in [p for p in path.split("/") if p]:
            match = [n for n in self.load_tree(tree) if n.name == part] if tree else []
            if not match:
                return False
            tree = match[0].subtree if match[0].type == "dir" else None
        return True

    def remove_snapshot(self, snapshot_id: str) -> None:
        self.storage.remove("snapshots", snapshot_id)

    def walk(self, tree_id: bytes, prefix: str = "") -> Iterator[tuple[str, Node]]:
        """Every node under a tree, depth first, with its path relative to the tree.

        Bounded first (`check_tree_limits`): a hostile snapshot is refused, not walked."""
        check_tree_limits(self, tree_id)
        return self._walk(tree_id, prefix)

    def _walk(self, tree_id: bytes, prefix: str) -> Iterator[tuple[str, Node]]:
        for node in self.load_tree(tree_id):
            path = f"{prefix}/{node.name}" if prefix else node.name
            yield path, node
            if node.type == "dir" and node.subtree:
                yield from self._walk(node.subtree, path)


def list_key_files(storage: Storage) -> list[KeyFile]:
    keys = []
    for info in storage.list("keys"):
        try:
            keys.append(parse_key_file(storage.load("keys", info.name)))
        except (ValueError, KeyError):
            continue  # a damaged key file must not stop the others from opening
    return sorted(keys, key=lambda k: k.created)


def vault_version() -> str:
    return __version__
