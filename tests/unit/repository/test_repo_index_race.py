"""Reading the index while a prune replaces it (on S3 the window is wide)."""

from __future__ import annotations


def test_an_index_replaced_while_it_is_read_is_read_again(unlocked_repo) -> None:
    """A prune writes its new index files, then removes the old ones: a reader that
    listed the old names and finds one gone lists again and sees the new files."""
    from vault.repository.blob import BlobType
    from vault.repository.repository import Repository
    from vault.repository.saver import BlobSaver

    saver = BlobSaver(unlocked_repo)
    blob_id, _ = saver.save(BlobType.DATA, b"kept across the index switch")
    saver.flush()
    storage = unlocked_repo.storage
    [old] = [i.name for i in storage.list("index")]

    class SwitchingStorage:
        """The storage, with the index replaced right after the reader's first listing."""

        def __init__(self) -> None:
            self.switched = False

        def __getattr__(self, name: str) -> object:
            return getattr(storage, name)

        def list(self, kind):  # type: ignore[no-untyped-def]
            listed = list(storage.list(kind))
            if kind == "index" and not self.switched:
                self.switched = True
                storage.save("index", "ab" * 32, storage.load("index", old))  # new file
                storage.remove("index", old)  # then the old one goes
            return iter(listed)

    reader = Repository(SwitchingStorage(), unlocked_repo.config,  # type: ignore[arg-type]
                        unlocked_repo._master, unlocked_repo.key_id)
    assert blob_id in reader.load_index()
    assert reader.load_blob(blob_id) == b"kept across the index switch"
