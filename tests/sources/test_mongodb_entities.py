"""Entity hierarchy: per-entity counts in meta, the tree built from them, and a selective
backup or restore of one project that brings its sessions and messages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import ObjectId, decode_all
from mongo_helpers import raw_documents
from mongo_server_fixture import MongoServer, mongo_db, mongo_server  # noqa: F401

from vault.sources.base import SourceRestoreRequest, capture_to_memory
from vault.sources.entities import (
    Entity,
    EntitySelection,
    entity_closure,
    entity_tree,
    id_candidates,
)
from vault.sources.mongodb.config import MongoSourceConfig
from vault.sources.mongodb.restore import MongoRestoreRefused
from vault.sources.mongodb.source import from_config

START = dt.datetime(2024, 3, 1)


def make_chat(client: Any, database: str) -> list[ObjectId]:
    """3 projects; project p has p+1 sessions; each session has 4 messages."""
    projects = [ObjectId() for _ in range(3)]
    db = client[database]
    db.projects.insert_many([{"_id": p, "created_at": START + dt.timedelta(days=i)}
                             for i, p in enumerate(projects)])
    session_id = 0
    for index, project in enumerate(projects):
        for _ in range(index + 1):
            session_id += 1
            db.sessions.insert_one({"_id": session_id, "project_id": project})
            db.messages.insert_many([
                {"_id": ObjectId(), "session_id": session_id, "text": f"m{k}",
                 "sent_at": START + dt.timedelta(hours=session_id * 10 + k)} for k in range(4)])
    db.users.insert_one({"_id": "u1"})
    return projects


def chat_source(server: MongoServer, database: str) -> Any:
    return from_config(MongoSourceConfig.model_validate({
        "type": "mongodb", "name": "chat", "url": server.db_url(database),
        "entities": [
            {"name": "project", "collection": "projects", "date_field": "created_at"},
            {"name": "session", "collection": "sessions", "parent": "project",
             "key": "project_id"},
            {"name": "message", "collection": "messages", "parent": "session",
             "key": "session_id", "date_field": "sent_at"},
        ],
    }))


def test_meta_counts_entities_and_gives_the_tree(mongo_server: MongoServer,  # noqa: F811
                                                 mongo_db: str) -> None:  # noqa: F811
    database = f"{mongo_db}_chat"
    with mongo_server.client() as client:
        make_chat(client, database)
    stored = capture_to_memory(chat_source(mongo_server, database))

    (project,) = entity_tree(stored.meta)
    (session,) = project.children
    (message,) = session.children
    assert (project.name, project.documents, session.documents, message.documents) == (
        "project", 3, 6, 24)
    assert project.collection == f"{database}.projects" and message.children == []
    assert project.first is not None and project.first.startswith("2024-03-01")
    assert project.last is not None and project.last.startswith("2024-03-03")
    assert message.first is not None and message.first.startswith("2024-03-01T10:00")
    assert session.first is None


def test_selective_backup_and_restore_of_one_project(mongo_server: MongoServer,  # noqa: F811
                                                     mongo_db: str) -> None:  # noqa: F811
    database, copy = f"{mongo_db}_chat", f"{mongo_db}_copy"
    with mongo_server.client() as client:
        projects = make_chat(client, database)
        source = chat_source(mongo_server, database)
        wanted = projects[1]  # sessions 2 and 3, messages 8
        sessions = [2, 3]
        expected = {
            "projects": [d for d in raw_documents(client, database, "projects")
                         if decode_all(d)[0]["_id"] == wanted],
            "sessions": [d for d in raw_documents(client, database, "sessions")
                         if decode_all(d)[0]["_id"] in sessions],
            "messages": [d for d in raw_documents(client, database, "messages")
                         if decode_all(d)[0]["session_id"] in sessions],
        }

        partial = capture_to_memory(source.select_entity("project", (str(wanted),)))
        assert {name: partial.data[f"{database}/{name}.bson"] for name in expected} == {
            name: b"".join(docs) for name, docs in expected.items()}
        assert f"{database}/users.bson" not in partial.data
        assert partial.meta["filters"]["entity"]["entity"] == "project"

        full = capture_to_memory(source)
        request = SourceRestoreRequest(target=copy, query={"entity": "project",
                                                           "ids": [{"$oid": str(wanted)}]})
        result = source.restore(full, request)
        for name, docs in expected.items():
            assert raw_documents(client, copy, name) == docs
        assert result.details["collections"] == {f"{copy}.projects": 1, f"{copy}.sessions": 2,
                                                 f"{copy}.messages": 8}
        assert "users" not in client[copy].list_collection_names()

        with pytest.raises(MongoRestoreRefused, match="no entity is named 'team'"):
            source.restore(full, SourceRestoreRequest(target=copy, query={"entity": "team",
                                                                          "ids": [1]}))


def test_closure_follows_every_branch_of_the_tree() -> None:
    entities = [Entity("p", "d.p"), Entity("s", "d.s", "p", "pid"), Entity("f", "d.f", "p", "pid"),
                Entity("m", "d.m", "s", "sid")]
    rows = {"d.p": [{"_id": 1}, {"_id": 2}], "d.s": [{"_id": 10, "pid": 1}, {"_id": 11, "pid": 2}],
            "d.f": [{"_id": 20, "pid": 1}], "d.m": [{"_id": 30, "sid": 10}, {"_id": 31, "sid": 11}]}

    def find_ids(entity: Entity, field: str, values: list[Any]) -> list[Any]:
        return [row["_id"] for row in rows[entity.collection] if row.get(field) in values]

    assert entity_closure(entities, EntitySelection("p", (1,)), find_ids) == {
        "p": [1], "s": [10], "f": [20], "m": [30]}
    assert entity_closure(entities, EntitySelection("s", (11,)), find_ids) == {
        "s": [11], "m": [31]}


def test_ids_from_a_command_line_match_object_ids_and_integers() -> None:
    """`--entity session=3` cannot say whether 3 is text or a number: both are tried, as
    a 24-hex-digit id is tried as an ObjectId too."""
    oid = ObjectId()
    assert id_candidates(["3", str(oid), "x", 4]) == ["3", 3, str(oid), oid, "x", 4]
