"""What the storage contract suite needs to know about the Azure and GCS backends
(vault.storage.azure, vault.storage.gcs); their emulators come from tests/cloud_servers.py.

The contract module's ``harness`` fixture reaches them as an operator without a config file
would: Azure through ``AZURE_STORAGE_CONNECTION_STRING`` (which vault parses), GCS through
``GOOGLE_SERVICE_ACCOUNT_KEY`` (which obstore reads), whose ``gcs_base_url`` is the XML API
shim in front of gcp-storage-emulator (tests/gcs_xml_shim.py).
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import obstore
from full_s3_proxy import full_after
from obstore.store import AzureStore
from s3_harness import object_store

from cloud_servers import CONTAINER, GCS_BUCKET, GcsEmulator, emulator_at
from vault.storage import Storage
from vault.storage.azure import CONNECTION_STRING_ENV, AzureStorage, parse_connection_string
from vault.storage.gcs import GcsStorage


def azure_url(tmp: Path) -> str:
    # One container, a fresh prefix per test: tests never see each other's objects.
    return f"az://{CONTAINER}/{tmp.name}-{secrets.token_hex(4)}/repo"


def gcs_url(tmp: Path) -> str:
    return f"gs://{GCS_BUCKET}/{tmp.name}-{secrets.token_hex(4)}/repo"


def azure_permission_problems(storage: Storage) -> list[str]:
    """Blobs an unsigned (anonymous) request may read: there must be none."""
    azure = object_store(storage)
    assert isinstance(azure, AzureStorage)
    settings = azure.settings
    anonymous = AzureStore(settings.container, prefix=settings.prefix,
                           account_name=settings.account, endpoint=settings.endpoint,
                           skip_signature=True, client_options={"allow_http": True},
                           retry_config={"max_retries": 0})
    problems = []
    for chunk in obstore.list(azure._store):
        for meta in chunk:
            try:
                obstore.get(anonymous, str(meta["path"])).bytes()
            except Exception:  # refused (404 for a private container), as it must be
                continue
            problems.append(f"{meta['path']}: readable without credentials")
    return problems


@contextmanager
def azure_tiny_target(tmp_path: Path) -> Iterator[str]:
    """Azurite behind a proxy that answers 507 once 2 MiB are stored (Azurite has no quota
    of its own); Shared Key signatures do not cover the host, so they stay valid."""
    upstream = os.environ[CONNECTION_STRING_ENV]
    fields = parse_connection_string(upstream)
    endpoint = fields["BlobEndpoint"]
    account_path = "/" + endpoint.split("/", 3)[3]
    with full_after(endpoint, 2 << 20) as proxy:
        fields["BlobEndpoint"] = proxy + account_path
        os.environ[CONNECTION_STRING_ENV] = ";".join(f"{k}={v}" for k, v in fields.items())
        try:
            yield azure_url(tmp_path)
        finally:
            os.environ[CONNECTION_STRING_ENV] = upstream


def gcs_permission_problems(storage: Storage) -> list[str]:
    """Objects whose ACL grants everyone (``allUsers``, ``allAuthenticatedUsers``) a role,
    as the emulator's JSON API lists them, and requests in which vault asked for a canned
    ACL (``x-goog-acl``): there must be none. (The emulator checks no credentials, so an
    unsigned read proves nothing here, unlike on Azurite.)"""
    gcs = object_store(storage)
    assert isinstance(gcs, GcsStorage)
    emulator = emulator_at(json.loads(os.environ["GOOGLE_SERVICE_ACCOUNT_KEY"])["gcs_base_url"])
    problems = [f"{line}: asks for a canned ACL" for line in emulator.shim.requests
                if "x-goog-acl" in line.lower()]
    listing = _emulator_json(emulator, f"o?prefix={quote(gcs.settings.prefix + '/', safe='')}")
    for item in listing.get("items") or []:
        acl = _emulator_json(emulator, f"o/{quote(item['name'], safe='')}/acl")
        public = {entry["entity"] for entry in acl.get("items") or []} & _EVERYONE
        problems += [f"{item['name']}: granted to {entity}" for entity in sorted(public)]
    return problems


_EVERYONE = {"allUsers", "allAuthenticatedUsers"}


def _emulator_json(emulator: GcsEmulator, path: str) -> dict[str, Any]:
    url = f"{emulator.json_endpoint}/storage/v1/b/{emulator.bucket}/{path}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return dict(json.load(answer))


@contextmanager
def gcs_tiny_target(tmp_path: Path) -> Iterator[str]:
    """The emulator (through its XML API shim) behind the 507 proxy: the service-account
    JSON names the endpoint."""
    upstream = os.environ["GOOGLE_SERVICE_ACCOUNT_KEY"]
    account = json.loads(upstream)
    with full_after(account["gcs_base_url"], 2 << 20) as proxy:
        os.environ["GOOGLE_SERVICE_ACCOUNT_KEY"] = json.dumps({**account,
                                                              "gcs_base_url": proxy})
        try:
            yield gcs_url(tmp_path)
        finally:
            os.environ["GOOGLE_SERVICE_ACCOUNT_KEY"] = upstream
