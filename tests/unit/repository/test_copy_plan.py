"""The pure copy planner: what is skipped (its original is there), which earlier copy maps
an incremental copy's blobs, a copy's parent, and a schedule's `after_newest_copy`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vault.planning.copy_plan import after_newest_copy, copy_of, original_id, plan_copy, select
from vault.planning.repository_holdings import HeldSnapshot, newest_per_source
from vault.repository.snapshot import Snapshot

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def snap(sid: str, hours: int, *, label: str = "app", parent: str | None = None,
         original: str | None = None, tags: tuple[str, ...] = ()) -> Snapshot:
    made = Snapshot(time=T0 + timedelta(hours=hours), host="h", user="u", uid=0,
                    paths=["/srv/app"], tree="00" * 32, parent=parent, vault_version="1",
                    source={"type": "files", "name": label, "label": label},
                    original=original, tags=list(tags))
    made.id = sid
    return made


def test_a_snapshot_whose_original_is_there_is_skipped_and_copies_of_copies_count() -> None:
    a, b, c = snap("a" * 64, 0), snap("b" * 64, 1, parent="a" * 64), snap("c" * 64, 2)
    there = [snap("x" * 64, 0, original=a.id)]
    plan = plan_copy([c, a, b, a], [a, b, c], there)
    assert [i.snapshot.id for i in plan.items] == [a.id, b.id, c.id]  # once, oldest first
    assert [i.snapshot.id for i in plan.skipped] == [a.id]
    assert plan.items[0].copied_as == "x" * 64
    # b's parent a was copied: its copy is b's copy's parent, and its trees map b's blobs
    assert plan.items[1].parent_copy == "x" * 64
    assert plan.items[1].learn_from == (a, "x" * 64)
    # c has no parent: the newest earlier copied snapshot of its source maps its blobs
    assert plan.items[2].parent_copy is None and plan.items[2].learn_from == (a, "x" * 64)
    # a copy of a copy names the first original
    copied = snap("y" * 64, 0, original="z" * 64)
    assert original_id(copied) == "z" * 64 and copy_of(copied, "11" * 32, None).original == \
        "z" * 64


def test_an_earlier_copy_of_another_source_maps_nothing() -> None:
    a, b = snap("a" * 64, 0, label="db"), snap("b" * 64, 1, label="app")
    plan = plan_copy([b], [a, b], [snap("x" * 64, 0, original=a.id)])
    assert plan.items[0].learn_from is None


def test_copy_of_keeps_everything_but_tree_parent_and_id() -> None:
    source = snap("a" * 64, 3, tags=("nightly",))
    copy = copy_of(source, "22" * 32, "p" * 64)
    assert (copy.tree, copy.parent, copy.original, copy.id) == ("22" * 32, "p" * 64,
                                                                source.id, "")
    assert (copy.time, copy.tags, copy.source, copy.paths) == (source.time, source.tags,
                                                               source.source, source.paths)
    assert source.tree == "00" * 32 and source.id == "a" * 64  # the source is untouched


def test_select_by_time_source_and_tag() -> None:
    snaps = [snap("a" * 64, 0, tags=("schedule:n",)), snap("b" * 64, 1, label="db"),
             snap("c" * 64, 2, tags=("schedule:n",))]
    assert [s.id[0] for s in select(snaps, since=None, source=None)] == ["a", "b", "c"]
    assert [s.id[0] for s in select(snaps, since=T0 + timedelta(hours=1),
                                    source=None)] == ["b", "c"]
    assert [s.id[0] for s in select(snaps, since=None, source="db")] == ["b"]
    assert [s.id[0] for s in select(snaps, since=None, source=None,
                                    tag="schedule:n")] == ["a", "c"]


def test_after_newest_copy_skips_what_the_target_forgot() -> None:
    snaps = [snap(c * 64, h) for h, c in enumerate("abcd")]
    assert after_newest_copy(snaps, []) == snaps  # nothing copied yet: everything
    # c was copied (a and b forgotten there by its own retention): c and d only
    there = [snap("x" * 64, 2, original="c" * 64)]
    assert [s.id[0] for s in after_newest_copy(snaps, there)] == ["c", "d"]


def test_newest_per_source_leaves_out_other_repositories_and_forgotten_ones() -> None:
    held = [HeldSnapshot("r1", "s1", "app", T0), HeldSnapshot("r1", "s2", "app", T0 +
                                                                timedelta(hours=1)),
            HeldSnapshot("r1", "s3", "db", T0), HeldSnapshot("r2", "s4", "app", T0 +
                                                           timedelta(hours=5))]
    newest = newest_per_source(held, {("r1", "s2")}, "r1")
    assert [(n.source, n.snapshot_id) for n in newest] == [("app", "s1"), ("db", "s3")]
