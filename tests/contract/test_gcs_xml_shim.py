"""The test-side GCS XML API shim (tests/gcs_xml_shim.py) in front of gcp-storage-emulator:
what obstore sends is answered from the emulator's objects, listings page as GCS's do,
preconditions reach the emulator untouched (which ignores them), and a request outside
the translated subset is refused and recorded rather than answered wrongly."""

from __future__ import annotations

import json
import os
import secrets
import urllib.request
from typing import Any
from urllib.parse import quote, unquote

import obstore
import pytest
from obstore.store import GCSStore

from cloud_servers import GcsEmulator, gcs_emulator_missing


@pytest.fixture
def gcs(request: pytest.FixtureRequest) -> GcsEmulator:
    missing = gcs_emulator_missing()
    if missing is not None:  # the one reason to skip: the emulator cannot be installed
        pytest.skip(missing)
    server: GcsEmulator = request.getfixturevalue("gcs_server")
    return server


def _store(gcs: GcsEmulator, prefix: str) -> Any:
    return GCSStore(gcs.bucket, prefix=prefix,
                    config={"service_account_key": gcs.service_account_key()},
                    client_options={"allow_http": True}, retry_config={"max_retries": 0})


def _emulator_object(gcs: GcsEmulator, name: str) -> dict[str, Any]:
    url = f"{gcs.json_endpoint}/storage/v1/b/{gcs.bucket}/o/{quote(name, safe='')}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return dict(json.load(answer))


def test_objects_live_in_the_emulator_and_read_back_whole_and_in_ranges(
    gcs: GcsEmulator,
) -> None:
    prefix = f"shim-{secrets.token_hex(4)}"
    payload = os.urandom(100_003)
    put = obstore.put(_store(gcs, prefix), "data/ab/one", payload, use_multipart=False)
    stored = _emulator_object(gcs, f"{prefix}/data/ab/one")
    assert int(stored["size"]) == len(payload)
    assert put["version"] == stored["generation"]  # x-goog-generation, from the emulator
    head = obstore.head(_store(gcs, prefix), "data/ab/one")
    assert (head["size"], head["e_tag"], head["version"]) == (len(payload), put["e_tag"],
                                                              put["version"])
    store = _store(gcs, prefix)
    assert bytes(obstore.get(store, "data/ab/one").bytes()) == payload
    assert bytes(obstore.get_range(store, "data/ab/one", start=99_000, length=1003)) == (
        payload[99_000:])


def test_a_listing_pages_by_continuation_token(gcs: GcsEmulator) -> None:
    prefix = f"pages-{secrets.token_hex(4)}"
    store = _store(gcs, prefix)
    names = sorted(f"index/{n:04d}" for n in range(1003))
    for name in names:
        obstore.put(store, name, b"x", use_multipart=False)
    before = len(gcs.shim.requests)
    listed = [str(meta["path"]) for chunk in obstore.list(store, "index/") for meta in chunk]
    assert sorted(listed) == names
    pages = [line for line in gcs.shim.requests[before:] if "list-type=2" in line]
    assert len(pages) == 2 and "continuation-token=" in pages[1], pages


def test_preconditions_are_passed_on_and_the_emulator_ignores_them(gcs: GcsEmulator) -> None:
    """What makes vault pick list-then-check on this server: a second create-only PUT
    overwrites, as the emulator does with ifGenerationMatch=0 itself."""
    prefix = f"cond-{secrets.token_hex(4)}"
    store = _store(gcs, prefix)
    obstore.put(store, "locks/aa", b"first", mode="create")
    obstore.put(store, "locks/aa", b"second", mode="create")
    assert bytes(obstore.get(store, "locks/aa").bytes()) == b"second"
    sent = [line for line in gcs.shim.requests if f"{prefix}/locks/aa" in unquote(line)]
    assert [line.split(" ", 1)[0] for line in sent] == ["PUT", "PUT", "GET"]
    assert all("x-goog-if-generation-match: 0" in line for line in sent[:2]), sent


def test_a_request_outside_the_translated_subset_is_refused_and_recorded(
    gcs: GcsEmulator,
) -> None:
    prefix = f"multi-{secrets.token_hex(4)}"
    with pytest.raises(Exception, match="501"):
        obstore.put(_store(gcs, prefix), "big", b"x" * (6 << 20), use_multipart=True,
                    chunk_size=5 << 20)
    assert any(line.startswith("POST ") and "uploads" in line
               for line in gcs.shim.untranslated), gcs.shim.untranslated
    gcs.shim.untranslated.clear()  # leave the session's shim as the other tests found it
