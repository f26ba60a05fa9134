"""Per-document MongoDB restores against a real server: every mode x conflict policy over a
target that drifted from the snapshot (documents deleted, changed, added), the dry run that
predicted it, selections that bound what overwrite deletes, entity copies with new ids and
rewritten references, and the source that captures what a restore would change."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import bson
import pytest
from bson import Decimal128, Int64, ObjectId
from mongo_helpers import raw_documents
from mongo_server_fixture import MongoServer, mongo_db, mongo_server  # noqa: F401
from test_mongodb_entities import chat_source, make_chat

from vault.sources.base import SourceRestoreRequest, capture_to_memory
from vault.sources.mongodb.restore import (
    MongoRestoreRefused,
    RestoreConflicts,
    RestoreTargetNotEmpty,
)
from vault.sources.mongodb.source import from_url

WHEN = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def note(i: int, text: str) -> dict[str, Any]:
    return {"_id": i, "text": text, "n": Int64(i), "price": Decimal128(f"{i}.10"),
            "at": WHEN + dt.timedelta(days=i)}


def encoded(document: dict[str, Any]) -> bytes:
    return bson.encode(document)


SNAPSHOT = {i: note(i, f"v{i}") for i in range(6)}
TAGS = [{"_id": ObjectId(f"{i:024x}"), "tag": f"t{i}"} for i in range(3)]


def drifted_database(client: Any, database: str) -> None:
    """The snapshot's documents, then drift: 0 deleted, 1 and 2 changed, 100 added."""
    client[database].notes.insert_many(list(SNAPSHOT.values()))
    client[database].tags.insert_many(TAGS)


def drift(client: Any, database: str) -> None:
    client[database].notes.delete_one({"_id": 0})
    client[database].notes.replace_one({"_id": 1}, note(1, "changed 1"))
    client[database].notes.replace_one({"_id": 2}, {"_id": 2, "text": 2.5})
    client[database].notes.insert_one(note(100, "added"))


DRIFTED = {1: note(1, "changed 1"), 2: {"_id": 2, "text": 2.5}, 3: SNAPSHOT[3], 4: SNAPSHOT[4],
           5: SNAPSHOT[5], 100: note(100, "added")}


def renamed(i: int, new: int) -> dict[str, Any]:
    return {**SNAPSHOT[i], "_id": new}


# mode, policy -> the notes collection afterwards (None: refused, nothing written)
EXPECTED: dict[tuple[str, str], dict[int, dict[str, Any]] | None] = {
    ("overwrite", "overwrite"): dict(SNAPSHOT),
    ("overwrite", "skip"): {0: SNAPSHOT[0], **{k: v for k, v in DRIFTED.items() if k != 100}},
    ("overwrite", "rename"): {0: SNAPSHOT[0], **{k: v for k, v in DRIFTED.items() if k != 100},
                              101: renamed(1, 101), 102: renamed(2, 102)},
    ("overwrite", "fail"): None,
    ("merge", "skip"): {0: SNAPSHOT[0], **DRIFTED},
    ("merge", "overwrite"): {**SNAPSHOT, 100: DRIFTED[100]},
    ("merge", "rename"): {0: SNAPSHOT[0], **DRIFTED, 101: renamed(1, 101),
                          102: renamed(2, 102)},
    ("merge", "fail"): None,
}
EXPECTED_ACTIONS = {
    "overwrite": {"0": "create", "1": "{policy}", "2": "{policy}", "3": "skip", "4": "skip",
                  "5": "skip", "100": "delete"},
    "merge": {"0": "create", "1": "{policy}", "2": "{policy}", "3": "skip", "4": "skip",
              "5": "skip"},
}


@pytest.mark.parametrize(("mode", "policy"), sorted(EXPECTED))
def test_every_mode_and_conflict_policy_per_document(
        mongo_server: MongoServer, mongo_db: str, mode: str, policy: str) -> None:  # noqa: F811
    database = f"{mongo_db}_app"
    with mongo_server.client() as client:
        drifted_database(client, database)
        source = from_url(mongo_server.db_url(database))
        stored = capture_to_memory(source)
        drift(client, database)
        before = {name: raw_documents(client, database, name) for name in ("notes", "tags")}
        request = SourceRestoreRequest(mode=mode, on_conflict=policy)  # type: ignore[arg-type]

        if EXPECTED[(mode, policy)] is None:
            with pytest.raises(RestoreConflicts) as refused:
                source.restore(stored, request)
            assert str(refused.value) == (
                f"cannot restore: 2 document(s) differ between the snapshot and the target "
                f"({database}.notes: 2); nothing was written (choose --on-conflict skip, "
                "overwrite or rename)")
            assert {n: raw_documents(client, database, n) for n in before} == before
            return

        dry = source.restore(stored, SourceRestoreRequest(
            mode=mode, on_conflict=policy, dry_run=True))  # type: ignore[arg-type]
        assert {n: raw_documents(client, database, n) for n in before} == before
        result = source.restore(stored, request)

        expected = EXPECTED[(mode, policy)]
        assert expected is not None
        assert raw_documents(client, database, "notes") == [
            encoded(expected[k]) for k in sorted(expected)]
        assert raw_documents(client, database, "tags") == before["tags"]
        plan = result.details["plan"]
        assert plan == dry.details["plan"]
        assert result.details.get("id_map") == dry.details.get("id_map")
        actions = {i["key"]: i["action"] for i in plan["items"] if i["group"].endswith("notes")}
        assert actions == {k: v.format(policy=policy) for k, v in EXPECTED_ACTIONS[mode].items()}
        assert plan["groups"][f"{database}.tags"] == {"skip": 3}
        if policy == "rename":
            assert result.details["id_map"] == {f"{database}.notes": {"1": "101", "2": "102"}}
        else:
            assert "id_map" not in result.details
        written = sum(1 for a in actions.values() if a in ("create", "overwrite", "rename"))
        assert result.details["collections"] == {f"{database}.notes": written,
                                                 f"{database}.tags": 0}


def test_new_target_restores_beside_and_refuses_a_target_with_data(
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    database, fresh = f"{mongo_db}_app", f"{mongo_db}_fresh"
    with mongo_server.client() as client:
        drifted_database(client, database)
        source = from_url(mongo_server.db_url(database))
        stored = capture_to_memory(source)
        drift(client, database)
        before = raw_documents(client, database, "notes")

        with pytest.raises(RestoreTargetNotEmpty, match=rf"{database}\.notes"):
            source.restore(stored, SourceRestoreRequest(mode="new-target", dry_run=True))
        dry = source.restore(stored, SourceRestoreRequest(mode="new-target", target=fresh,
                                                          dry_run=True))
        assert fresh not in client.list_database_names()
        result = source.restore(stored, SourceRestoreRequest(mode="new-target", target=fresh))

        assert raw_documents(client, fresh, "notes") == [encoded(SNAPSHOT[i]) for i in range(6)]
        assert raw_documents(client, database, "notes") == before
        assert result.details["plan"] == dry.details["plan"]
        assert result.details["plan"]["totals"]["create"] == 9
        assert result.details["plan"]["destructive"] is False


def test_overwrite_deletes_only_within_the_selection(
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    database = f"{mongo_db}_app"
    with mongo_server.client() as client:
        client[database].notes.insert_many(
            [{"_id": i, "tag": "ab"[i % 2], "v": i} for i in range(10)])
        source = from_url(mongo_server.db_url(database))
        stored = capture_to_memory(source)
        client[database].notes.insert_many([{"_id": 20, "tag": "b"}, {"_id": 21, "tag": "a"}])
        client[database].notes.update_many({}, {"$set": {"v": -1}})

        result = source.restore(stored, SourceRestoreRequest(
            mode="overwrite", only=("notes",), query={"filter": {"tag": "b"}}))

        after = {d["_id"]: d for d in client[database].notes.find()}
        assert sorted(after) == [*range(10), 21]  # 20 (tag b, not in the snapshot) deleted
        assert [after[i]["v"] for i in range(10)] == [-1, 1, -1, 3, -1, 5, -1, 7, -1, 9]
        assert result.details["plan"]["totals"] == {
            "create": 0, "overwrite": 5, "skip": 0, "rename": 0, "delete": 1, "conflict": 0}


def test_entity_overwrite_deletes_what_the_entity_gained_and_nothing_else(
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    database = f"{mongo_db}_chat"
    with mongo_server.client() as client:
        projects = make_chat(client, database)
        source = chat_source(mongo_server, database)
        stored = capture_to_memory(source)
        original = {n: raw_documents(client, database, n) for n in ("sessions", "messages")}
        db = client[database]
        db.sessions.insert_one({"_id": 50, "project_id": projects[1]})  # gained by project 1
        db.messages.insert_one({"_id": ObjectId(), "session_id": 50, "text": "new"})
        db.messages.delete_many({"session_id": 2})  # lost by project 1
        db.sessions.insert_one({"_id": 60, "project_id": projects[2]})  # another project's

        result = source.restore(stored, SourceRestoreRequest(
            mode="overwrite", query={"entity": "project", "ids": [str(projects[1])]}))

        assert raw_documents(client, database, "messages") == original["messages"]
        assert raw_documents(client, database, "sessions") == [
            *original["sessions"], bson.encode({"_id": 60, "project_id": projects[2]})]
        assert result.details["plan"]["groups"][f"{database}.messages"] == {
            "create": 4, "delete": 1, "skip": 4}


def chat_documents(client: Any, database: str) -> dict[str, list[dict[str, Any]]]:
    return {name: list(client[database][name].find(sort=[("_id", 1)]))
            for name in ("projects", "sessions", "messages", "users")}


@pytest.mark.parametrize("elsewhere", [False, True], ids=["same-database", "other-database"])
def test_entity_restored_as_a_new_copy_with_new_ids(
        mongo_server: MongoServer, mongo_db: str, elsewhere: bool) -> None:  # noqa: F811
    database = f"{mongo_db}_chat"
    target = f"{mongo_db}_copy" if elsewhere else database
    with mongo_server.client() as client:
        projects = make_chat(client, database)
        source = chat_source(mongo_server, database)
        stored = capture_to_memory(source)
        wanted = projects[2]  # sessions 4, 5, 6 with 4 messages each
        before = chat_documents(client, database)
        raw_before = {n: raw_documents(client, database, n) for n in before}
        request = SourceRestoreRequest(target=target, mode="merge", remap_ids=True,
                                       query={"entity": "project", "ids": [str(wanted)]})

        dry = source.restore(stored, dataclasses.replace(request, dry_run=True))
        assert {n: raw_documents(client, database, n) for n in before} == raw_before
        result = source.restore(stored, request)

        id_map = result.details["id_map"]
        assert set(id_map) == {f"{target}.projects", f"{target}.sessions", f"{target}.messages"}
        assert result.details["plan"] == dry.details["plan"]
        assert result.details["plan"]["totals"]["create"] == 1 + 3 + 12
        new_project = ObjectId(bson.json_util.loads(
            id_map[f"{target}.projects"][f'{{"$oid": "{wanted}"}}']))
        assert new_project != wanted
        session_map = {int(old): int(new) for old, new in id_map[f"{target}.sessions"].items()}
        assert sorted(session_map) == [4, 5, 6]
        assert sorted(session_map.values()) == [7, 8, 9]  # integers stay integers, past the max
        message_map = {bson.json_util.loads(o): bson.json_util.loads(n)
                       for o, n in id_map[f"{target}.messages"].items()}
        assert len(message_map) == 12

        copied = client[target]
        (project,) = copied.projects.find({"_id": new_project})
        old_project = next(p for p in before["projects"] if p["_id"] == wanted)
        assert project == {**old_project, "_id": new_project}
        sessions = list(copied.sessions.find({"project_id": new_project}, sort=[("_id", 1)]))
        assert [s["_id"] for s in sessions] == [7, 8, 9]
        for old in (s for s in before["sessions"] if s["project_id"] == wanted):
            new_id = session_map[old["_id"]]
            messages = list(copied.messages.find({"session_id": new_id}, sort=[("_id", 1)]))
            olds = [m for m in before["messages"] if m["session_id"] == old["_id"]]
            assert messages == [{**m, "_id": message_map[m["_id"]], "session_id": new_id}
                                for m in olds]
            assert all(isinstance(m["_id"], ObjectId) for m in messages)

        if elsewhere:
            assert {n: raw_documents(client, database, n) for n in before} == raw_before
            assert sorted(copied.list_collection_names()) == ["messages", "projects",
                                                              "sessions"]
        else:  # the original is untouched, the copy is beside it
            after = {n: raw_documents(client, database, n) for n in before}
            for name, documents in raw_before.items():
                assert set(documents) <= set(after[name])
            assert [len(after[n]) - len(raw_before[n]) for n in before] == [1, 3, 12, 0]


def test_for_target_captures_what_a_restore_changes_so_it_can_be_undone(
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    database, other = f"{mongo_db}_chat", f"{mongo_db}_other"
    with mongo_server.client() as client:
        projects = make_chat(client, database)
        source = chat_source(mongo_server, database)
        stored = capture_to_memory(source)
        client[database].sessions.update_many({}, {"$set": {"edited": True}})
        client[database].messages.delete_many({"session_id": {"$gt": 3}})
        client[other].notes.insert_one({"_id": 1})
        edited = {n: raw_documents(client, database, n)
                  for n in ("projects", "sessions", "messages", "users")}
        request = SourceRestoreRequest(mode="overwrite",
                                       query={"entity": "project", "ids": [str(projects[2])]})

        undo_source = source.for_target(request, stored)
        undo = capture_to_memory(undo_source)
        assert sorted(p for p in undo.paths() if p.endswith(".bson")) == [
            f"{database}/{n}.bson" for n in ("messages", "projects", "sessions")]
        assert "users" not in str(undo_source.describe())
        without_snapshot = capture_to_memory(source.for_target(request))
        assert without_snapshot.paths() == undo.paths()
        assert capture_to_memory(source.for_target(SourceRestoreRequest(
            target=other, mode="overwrite"))).paths() == [f"{other}/notes.bson",
                                                           f"{other}/notes.metadata.json"]

        source.restore(stored, request)
        assert raw_documents(client, database, "messages") != edited["messages"]
        undo_source.restore(undo, SourceRestoreRequest(mode="overwrite"))
        assert {n: raw_documents(client, database, n) for n in edited} == edited


def test_ids_without_a_same_type_successor_are_refused_by_name(
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    database = f"{mongo_db}_app"
    with mongo_server.client() as client:
        client[database].odd.insert_many([{"_id": {"a": 1}, "v": 1}])
        source = from_url(mongo_server.db_url(database))
        stored = capture_to_memory(source)
        client[database].odd.update_many({}, {"$set": {"v": 2}})
        before = raw_documents(client, database, "odd")

        with pytest.raises(MongoRestoreRefused, match=r'cannot make a new _id like \{"a": 1\}'):
            source.restore(stored, SourceRestoreRequest(mode="merge", on_conflict="rename"))
        assert raw_documents(client, database, "odd") == before
        with pytest.raises(MongoRestoreRefused, match="no stored collection matches"):
            source.for_target(SourceRestoreRequest(only=("nope",)), stored)


def test_a_new_copy_takes_the_renamed_fields_and_the_original_keeps_its_own(
        mongo_server: MongoServer, mongo_db: str) -> None:  # noqa: F811
    """`--rename name=...`: the copied project document carries the new value (a field it
    did not have is added), its sessions point at it; `_id` cannot be renamed."""
    database = f"{mongo_db}_chat"
    with mongo_server.client() as client:
        projects = make_chat(client, database)
        source = chat_source(mongo_server, database)
        stored = capture_to_memory(source)
        wanted = projects[1]
        before = chat_documents(client, database)
        request = SourceRestoreRequest(mode="merge", remap_ids=True,
                                       query={"entity": "project", "ids": [str(wanted)]},
                                       rename=(("name", "Website (copy)"),))
        with pytest.raises(MongoRestoreRefused, match="_id"):
            source.restore(stored, dataclasses.replace(request, rename=(("_id", "x"),)))
        result = source.restore(stored, request)
        new_project = ObjectId(bson.json_util.loads(
            result.details["id_map"][f"{database}.projects"][f'{{"$oid": "{wanted}"}}']))
        after = chat_documents(client, database)
        old = next(p for p in before["projects"] if p["_id"] == wanted)
        assert next(p for p in after["projects"] if p["_id"] == wanted) == old
        (copy,) = client[database].projects.find({"_id": new_project})
        assert copy == {**old, "_id": new_project, "name": "Website (copy)"}
        assert client[database].sessions.count_documents({"project_id": new_project}) == 2
