"""Emulators of Azure Blob Storage and Google Cloud Storage for tests, on 127.0.0.1 at free
ports, with their state in a temporary directory (next to the S3 servers and sshd of
storage_servers.py).

- **Azurite** (npm ``azurite``, the ``azurite-blob`` service, a separate node process)
  keeps blobs in files under ``--location``, checks Shared Key signatures against the
  account it is given (``AZURITE_ACCOUNTS``: a random name and key per session, passed in
  the environment, never as an argument), and enforces ``If-None-Match: *`` (409) and
  ``If-Match`` (412). scripts/test.sh installs it under ``.venv/azurite`` (ignored by git,
  skipped by the checkout guard); ``azurite-blob`` on PATH works as well.
- **gcp-storage-emulator** (PyPI, a thread of the test process, in memory) speaks the GCS
  JSON API; obstore speaks the XML API, which it answers only in part, so obstore reaches
  it through tests/gcs_xml_shim.py (another thread), which translates. The emulator
  checks no credentials and ignores preconditions (``ifGenerationMatch``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from gcs_xml_shim import GcsXmlShim, gcs_xml_shim
from storage_servers import free_port, stop_process, wait_for_http

CONTAINER = "vault-test"
#: GCS bucket of the emulator (obstore percent-encodes even a '-' in the XML API path; the
#: shim decodes it, and the emulator's JSON routes get it quoted as they expect)
GCS_BUCKET = "vaulttest"
AZURITE_INSTALL = "scripts/test.sh installs it (npm install --prefix .venv/azurite azurite)"


@dataclass(frozen=True)
class AzuriteServer:
    #: the blob service URL, path-style with the account: http://127.0.0.1:PORT/ACCOUNT
    endpoint: str
    account: str
    key: str
    container: str = CONTAINER

    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account};"
                f"AccountKey={self.key};BlobEndpoint={self.endpoint};")


def azurite_binary() -> str | None:
    """``azurite-blob`` installed beside the venv by scripts/test.sh, else from PATH."""
    local = Path(sys.prefix) / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    return shutil.which("azurite-blob")


def azurite_missing() -> str | None:
    if azurite_binary() is None:
        return f"Azurite is not installed: {AZURITE_INSTALL}"
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs; scripts/test.sh does)"
    return None


@contextmanager
def azurite(state: Path) -> Iterator[AzuriteServer]:
    """Azurite's blob service over ``state`` with one account and the container
    CONTAINER; its log goes to ``state/azurite.log``."""
    binary = azurite_binary()
    assert binary is not None, f"Azurite is not installed: {AZURITE_INSTALL}"
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    account = "vault" + secrets.token_hex(4)
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {**os.environ, "AZURITE_ACCOUNTS": f"{account}:{key}"}
    log = (state / "azurite.log").open("wb")
    # --disableTelemetry: Azurite 3.3x would otherwise try to reach Microsoft's servers.
    server = subprocess.Popen(
        [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
         str(state / "data"), "--skipApiVersionCheck", "--disableTelemetry", "--silent"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=state)
    try:
        endpoint = f"http://127.0.0.1:{port}/{account}"
        wait_for_http(f"http://127.0.0.1:{port}", server, state / "azurite.log", "Azurite", 60)
        created = AzuriteServer(endpoint, account, key)
        create_container(created, CONTAINER)
        yield created
    finally:
        stop_process(server)
        log.close()


def create_container(server: AzuriteServer, name: str) -> None:
    """Create a container with a Shared Key signed request (obstore has no call for it)."""
    date, version = formatdate(usegmt=True), "2021-08-06"
    # String to sign: the verb, eleven empty standard headers, the x-ms-* headers, and the
    # resource (/ACCOUNT + the URL path, which for a path-style endpoint repeats it).
    resource = f"/{server.account}/{server.account}/{name}\nrestype:container"
    to_sign = "PUT" + "\n" * 12 + f"x-ms-date:{date}\nx-ms-version:{version}\n" + resource
    digest = hmac.new(base64.b64decode(server.key), to_sign.encode(), hashlib.sha256)
    signature = base64.b64encode(digest.digest()).decode()
    request = urllib.request.Request(
        f"{server.endpoint}/{name}?restype=container", method="PUT",
        headers={"x-ms-date": date, "x-ms-version": version, "Content-Length": "0",
                 "Authorization": f"SharedKey {server.account}:{signature}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201, answer.status


# --- Google Cloud Storage ----------------------------------------------------------------


@dataclass(frozen=True)
class GcsEmulator:
    #: where obstore's XML API requests go: the shim in front of the emulator
    endpoint: str
    #: the emulator itself (its JSON API), for what a test checks behind vault's back
    json_endpoint: str
    #: the shim, with its log of the requests it translated
    shim: GcsXmlShim
    bucket: str = GCS_BUCKET

    def service_account_key(self, endpoint: str | None = None) -> str:
        """A service-account JSON for the emulator: obstore's way to name a GCS endpoint
        without OAuth (``disable_oauth``: obstore then asks no token server); the private
        key is a throw-away marker that tests look for in vault's output."""
        import json

        return json.dumps({"gcs_base_url": endpoint or self.endpoint, "disable_oauth": True,
                           "client_email": "vault-test@example.invalid",
                           "private_key_id": secrets.token_hex(8),
                           "private_key": "not-a-key-" + secrets.token_hex(16)})


def gcs_emulator_missing() -> str | None:
    if importlib.util.find_spec("gcp_storage_emulator") is not None:
        return None
    return "gcp-storage-emulator is not installed: pip install -e '.[test]' (scripts/test.sh)"


@contextmanager
def gcs_emulator() -> Iterator[GcsEmulator]:
    """The emulator in a thread of this process, objects in memory, one bucket, and the
    XML API shim in front of it (tests/gcs_xml_shim.py: obstore speaks the XML API, the
    emulator the JSON API)."""
    from gcp_storage_emulator.server import create_server  # type: ignore[import-untyped]

    port = free_port()
    emulator = create_server("127.0.0.1", port, in_memory=True, default_bucket=GCS_BUCKET)
    emulator.start()
    json_endpoint = f"http://127.0.0.1:{port}"
    try:
        with gcs_xml_shim(json_endpoint) as shim:
            _running_gcs[shim.endpoint] = GcsEmulator(shim.endpoint, json_endpoint, shim)
            try:
                yield _running_gcs[shim.endpoint]
            finally:
                del _running_gcs[shim.endpoint]
    finally:
        emulator.stop()


_running_gcs: dict[str, GcsEmulator] = {}


def emulator_at(endpoint: str) -> GcsEmulator:
    """The running emulator whose shim is at ``endpoint`` (the ``gcs_base_url`` a
    service-account key names), for checks that only have a storage in hand."""
    return _running_gcs[endpoint]
