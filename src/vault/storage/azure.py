"""A repository in an Azure Blob Storage container via obstore.

URL: ``az://container/prefix``. The rest comes from ``[repository.azure]``: ``account`` (the
storage account's name), ``endpoint`` (another blob service than
``https://ACCOUNT.blob.core.windows.net``, e.g. Azurite's ``http://127.0.0.1:10000/ACCOUNT``),
and one way to log in, by secret reference: ``account_key``, ``sas_token`` or a
``connection_string`` (``AccountName=...;AccountKey=...;BlobEndpoint=...``, as the portal
shows it; also read from ``AZURE_STORAGE_CONNECTION_STRING``). What that leaves unset obstore
takes from the Azure environment (``AZURE_STORAGE_ACCOUNT_NAME``,
``AZURE_STORAGE_ACCOUNT_KEY``, ``AZURE_STORAGE_SAS_KEY``, a service principal, managed
identity). A URL is shown in messages, so it never carries a secret.

Conditional writes: ``If-None-Match: *`` to create, ``If-Match: <ETag>`` to replace.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from vault.config.secrets import Secret, SecretRef, resolve_secret
from vault.errors import UsageError
from vault.storage import cloud
from vault.storage.base import Storage
from vault.storage.registry import register

if TYPE_CHECKING:
    from vault.config.model import AzureConfig, RepositoryConfig

_CONTAINER = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"


@dataclass(frozen=True)
class AzureSettings:
    """Where and how to reach the container, secrets resolved (never shown: ``Secret``)."""

    container: str
    prefix: str
    endpoint: str | None
    account: str | None
    account_key: Secret | None
    sas_token: Secret | None
    use_emulator: bool


def parse_connection_string(text: str) -> dict[str, str]:
    """``Key=value;Key=value`` -> a dict; the message never repeats the text (it holds a
    key)."""
    fields: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, equals, value = part.partition("=")
        if not equals or not name:
            raise UsageError("the Azure connection string is not Key=value;Key=value;...")
        fields[name.strip()] = value.strip()
    return fields


def _from_connection_string(fields: Mapping[str, str]) -> dict[str, Any]:
    account = fields.get("AccountName")
    endpoint = fields.get("BlobEndpoint")
    suffix = fields.get("EndpointSuffix", "core.windows.net")
    if endpoint is None and account and suffix != "core.windows.net":
        protocol = fields.get("DefaultEndpointsProtocol", "https")
        endpoint = f"{protocol}://{account}.blob.{suffix}"
    if endpoint is not None and (urlsplit(endpoint).query or urlsplit(endpoint).fragment):
        # it would be shown wherever the repository is named; a SAS has its own key
        raise UsageError("the Azure connection string's BlobEndpoint holds a query: give "
                         "the SAS as SharedAccessSignature=...")
    return {"account": account, "endpoint": endpoint,
            "account_key": Secret(fields["AccountKey"]) if "AccountKey" in fields else None,
            "sas_token": Secret(fields["SharedAccessSignature"])
            if "SharedAccessSignature" in fields else None,
            "use_emulator": fields.get("UseDevelopmentStorage", "").lower() == "true"}


def settings_from(url: str, config: AzureConfig | None,
                  env: Mapping[str, str] | None = None) -> AzureSettings:
    """The URL plus ``[repository.azure]``; keys set in the table win over those of the
    connection string (from the table or ``AZURE_STORAGE_CONNECTION_STRING``)."""
    container, prefix = cloud.parse_bucket_url(url, "az", _CONTAINER, "Azure container",
                                         "[repository.azure]")
    env = os.environ if env is None else env

    def secret(ref: SecretRef | None, what: str) -> Secret | None:
        return resolve_secret(ref, f"Azure {what}", env=env) if ref is not None else None

    connection = secret(config.connection_string if config else None, "connection string")
    if connection is None and env.get(CONNECTION_STRING_ENV):
        connection = Secret(env[CONNECTION_STRING_ENV])
    base = _from_connection_string(parse_connection_string(connection)) if connection else {}
    return AzureSettings(
        container=container, prefix=prefix,
        endpoint=(config and config.endpoint) or base.get("endpoint"),
        account=(config and config.account) or base.get("account"),
        account_key=secret(config.account_key if config else None, "account key")
        or base.get("account_key"),
        sas_token=secret(config.sas_token if config else None, "SAS token")
        or base.get("sas_token"),
        use_emulator=bool(base.get("use_emulator")))


def _make_store(settings: AzureSettings) -> Any:
    from obstore.store import AzureStore  # heavy (a Rust extension): only when Azure is used

    config: dict[str, Any] = {}
    for key, value in (("endpoint", settings.endpoint), ("account_name", settings.account),
                       ("account_key", settings.account_key),
                       ("sas_key", settings.sas_token)):
        if value is not None:
            config[key] = str(value)
    if settings.use_emulator:
        config["use_emulator"] = True
    return AzureStore(settings.container, prefix=settings.prefix or None,
                      config=config,  # type: ignore[arg-type]
                      client_options=cloud.client_options(  # type: ignore[arg-type]
                          settings.endpoint or ("http:" if settings.use_emulator else None)),
                      retry_config=cloud.RETRY_CONFIG)  # type: ignore[arg-type]


class AzureStorage(cloud.ObjectStoreStorage):
    """Storage in an Azure Blob container under a prefix; see the module docstring."""

    container_noun: ClassVar[str] = "container"
    missing_container_codes: ClassVar[frozenset[str]] = frozenset({"ContainerNotFound"})

    scheme: ClassVar[str] = "az"
    settings: AzureSettings
    make_store = staticmethod(_make_store)


def open_azure(url: str, repository: RepositoryConfig | None = None) -> Storage:
    """Factory for ``az://container/prefix``: the table ``[repository.azure]``, retried."""
    table = repository.azure if repository is not None else None
    return cloud.retrying(AzureStorage(settings_from(url, table)))


register("az", open_azure)
