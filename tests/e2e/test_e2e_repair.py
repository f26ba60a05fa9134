"""Each kind of damage ends in a healthy repository: verify finds and records it, a backup
made after it restores byte-identical, `vault repair` reports exactly what is lost, and
then `verify --read-data` exits 0."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from damage_helpers import flip_byte, largest_pack

MiB = 1 << 20


@pytest.fixture(scope="module")
def healthy_template(vault_at, fs, tmp_path_factory) -> dict:
    """One snapshot of src: big.bin (4 MiB, several chunks) and small files."""
    root = tmp_path_factory.mktemp("repair")
    vault = vault_at(root)
    vault.init()
    src = root / "src"
    fs.write_random(src / "big.bin", 4 * MiB, seed=21)
    (src / "small.txt").write_text("small and intact\n")
    (src / "sub").mkdir()
    fs.write_random(src / "sub" / "mid.bin", 300_000, seed=22)
    first = vault.backup(src)["snapshot_id"]
    return {"src": src, "first": first, "repo": vault.env.repo}


@pytest.fixture
def healthy(vault, healthy_template: dict) -> dict:
    shutil.copytree(healthy_template["repo"], vault.env.repo, symlinks=True)
    return healthy_template


def _delete_pack(repo: Path) -> None:
    largest_pack(repo).unlink()


def _truncate_pack(repo: Path) -> None:
    pack = largest_pack(repo)
    os.truncate(pack, pack.stat().st_size // 2)


def _flip_index_byte(repo: Path) -> None:
    for index_file in (repo / "index").iterdir():
        flip_byte(index_file, index_file.stat().st_size // 2)


def _delete_index(repo: Path) -> None:
    for index_file in (repo / "index").iterdir():
        index_file.unlink()


def _damage_pack_header(repo: Path) -> None:
    pack = largest_pack(repo)
    flip_byte(pack, pack.stat().st_size - 4 - 20)  # inside the sealed header


def _in_largest_pack(repo, entry) -> bool:
    return entry.pack_id == largest_pack(Path(repo.storage.location)).name


def _past_half_of_largest_pack(repo, entry) -> bool:
    pack = largest_pack(Path(repo.storage.location))
    return entry.pack_id == pack.name and entry.offset + entry.length > pack.stat().st_size // 2


def _nothing(_repo, _entry) -> bool:
    return False


#: damage, the repairs that heal it, and which blobs it loses (until a backup heals them)
CASES: dict[str, tuple[Callable[[Path], None], list[str], Callable]] = {
    "deleted pack": (_delete_pack, ["index", "packs"], _in_largest_pack),
    "truncated pack": (_truncate_pack, ["packs"], _past_half_of_largest_pack),
    "flipped byte in an index file": (_flip_index_byte, ["index"], _nothing),
    "deleted index": (_delete_index, ["index"], _nothing),
    "damaged pack header": (_damage_pack_header, ["packs"], _nothing),
}


def files_losing(open_repo, snapshot_id: str, lost_blob: Callable) -> set[str]:
    """The paths of the snapshot's files with a blob that `lost_blob(repo, entry)`."""
    repo = open_repo()
    tree = bytes.fromhex(repo.load_snapshot(snapshot_id).tree)
    return {f"/{path}" for path, node in repo.walk(tree)
            if any(lost_blob(repo, repo.index.get(b)) for b in node.content)}


def _lost_paths(result) -> set[str]:
    return {item["path"] for item in result.summary["lost"]}


def _restores_identically(vault, fs, snapshot_id: str, src: Path, target: Path) -> None:
    vault.restore(snapshot_id, "--target", target)
    fs.assert_same_tree(src, fs.restored_path(target, src))


@pytest.mark.parametrize("case", sorted(CASES))
def test_damage_ends_in_a_healthy_repository(vault, healthy, fs, open_repo, tmp_path: Path,
                                             case: str) -> None:
    damage, repairs, lost_blob = CASES[case]
    src, first = healthy["src"], healthy["first"]
    expected_loss = files_losing(open_repo, first, lost_blob)
    damage(vault.env.repo)

    found = vault.json("verify", "--read-data")
    assert found.code == 1, case
    assert found.summary["problems"]
    if case == "damaged pack header":  # its blobs read fine: no file is called damaged
        assert found.summary["corrupted"] == {}

    # What the repair would lose, before any backup heals it: exactly the files whose
    # data is gone, nothing that is fine.
    lost = set()
    for target in repairs:
        dry = vault.json("repair", target, "--dry-run")
        assert dry.code == 0, dry.stderr
        lost |= _lost_paths(dry)
    assert lost == expected_loss
    if lost_blob is not _nothing:
        assert str(src / "big.bin") in lost

    # A backup made after the damage is whole.
    after = vault.backup(src)
    _restores_identically(vault, fs, after["snapshot_id"], src, tmp_path / "after")

    for target in repairs:
        done = vault.json("repair", target)
        assert done.code == 0, done.stderr
        assert _lost_paths(done) == set(), (case, target, done.summary)
    healthy_now = vault.json("verify", "--read-data")
    assert healthy_now.code == 0, (case, healthy_now.summary["problems"])
    # The backup stored the lost data again, so the old snapshot is whole too.
    _restores_identically(vault, fs, first, src, tmp_path / "first")
    statuses = {s["id"]: s["status"] for s in vault.json("snapshots").summary["snapshots"]}
    assert set(statuses.values()) == {"completed"}


def test_a_loss_no_backup_heals_is_reported_and_repaired(vault, healthy, fs, open_repo,
                                                          tmp_path: Path) -> None:
    """A truncated pack and no source to back up again: repair packs + snapshots --forget
    leave a verified repository whose repaired snapshot restores every other file, and
    the readable prefix of the damaged ones."""
    src, first = healthy["src"], healthy["first"]
    expected_loss = files_losing(open_repo, first, _past_half_of_largest_pack)
    _truncate_pack(vault.env.repo)
    assert vault.json("verify").code == 1
    packs = vault.json("repair", "packs")
    assert packs.code == 0, packs.stderr
    assert packs.summary["changes"]["packs_deleted"] == 1
    lost = _lost_paths(packs)
    assert lost == expected_loss and str(src / "big.bin") in lost
    snaps = vault.json("repair", "snapshots", "--forget")
    assert snaps.code == 0, snaps.stderr
    [(original, copy)] = snaps.summary["repaired"].items()
    assert original == first
    assert vault.json("verify", "--read-data").code == 0
    target = tmp_path / "out"
    vault.restore(copy, "--target", target)
    out = fs.restored_path(target, src)
    for path in (src / "small.txt", src / "sub" / "mid.bin", src / "big.bin"):
        restored = out / path.relative_to(src)
        if str(path) in lost:
            assert not restored.exists() or \
                path.read_bytes().startswith(restored.read_bytes())
        else:
            assert restored.read_bytes() == path.read_bytes()


def test_verify_checks_a_files_recorded_size_against_its_content(vault, healthy,
                                                                 open_repo) -> None:
    """A snapshot whose tree says big.bin has one byte more than its chunks hold (a bug
    or a forgery) fails verify, naming the file and both sizes."""
    from vault.repository.blob import BlobType
    from vault.repository.saver import BlobSaver
    from vault.repository.tree import encode_tree

    repo = open_repo()
    original = repo.load_snapshot(healthy["first"])
    saver = BlobSaver(repo)

    def lying(tree_id: bytes) -> bytes:
        nodes = repo.load_tree(tree_id)
        for node in nodes:
            if node.name == "big.bin":
                node.size += 1
            elif node.subtree:
                node.subtree = lying(node.subtree)
        return saver.save(BlobType.TREE, encode_tree(nodes))[0]

    forged = original.model_copy(update={"tree": lying(bytes.fromhex(original.tree)).hex()})
    saver.flush()
    repo.save_snapshot(forged)
    found = vault.json("verify")
    assert found.code == 1
    [problem] = found.summary["problems"]
    assert "'big.bin' records 4194305 bytes but its content holds 4194304" in problem


def test_a_pack_nothing_can_locate_is_never_deleted(vault, healthy) -> None:
    """Its header is damaged and no index file is left to say where its blobs are:
    `repair index` says so, and `repair packs` (even when named) keeps the pack."""
    pack = largest_pack(vault.env.repo)
    _damage_pack_header(vault.env.repo)
    _delete_index(vault.env.repo)
    before = pack.read_bytes()
    index = vault.json("repair", "index")
    assert index.code == 0, index.stderr
    assert any(pack.name[:12] in n and "left in place" in n for n in index.summary["notes"])
    packs = vault.json("repair", "packs", pack.name)
    assert packs.code == 0, packs.stderr
    assert packs.summary["changes"]["packs_kept_unreadable"] == 1
    assert pack.read_bytes() == before
