"""Where an S3 repository is and how to log in: its URL (``s3://bucket/prefix`` or restic's
``s3:https://host/bucket/prefix``), ``[repository.s3]`` and the standard AWS environment.
Kept apart from ``vault.storage.s3`` so reading settings never imports obstore."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vault.config.secrets import Secret, SecretRef, resolve_secret
from vault.errors import UsageError
from vault.storage.cloud import parse_bucket_url

if TYPE_CHECKING:
    from vault.config.model import S3Config

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class S3Settings:
    """Where and how to reach the bucket, secrets resolved (never shown: ``Secret``)."""

    bucket: str
    prefix: str
    endpoint: str | None = None
    region: str | None = None
    path_style: bool | None = None
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix"); refuse anything else."""
    return parse_bucket_url(url, "s3", _BUCKET, "S3 bucket", "[repository.s3]")


def from_restic_form(url: str) -> tuple[str, str | None]:
    """restic's ``s3:https://host:9000/bucket/prefix`` (or ``s3:host/bucket/prefix``, https
    implied) as ``("s3://bucket/prefix", "https://host:9000")``; other URLs unchanged."""
    if not url.lower().startswith("s3:") or url.startswith("s3://"):
        return url, None
    rest = url[3:]
    if not rest.lower().startswith(("http://", "https://")):
        rest = "https://" + rest
    parts = urlsplit(rest)
    if parts.username is not None or parts.password is not None or not parts.hostname:
        raise UsageError("restic-style s3: location needs a host and no credentials: "
                         "s3:https://host/bucket/prefix")
    return f"s3://{parts.path.lstrip('/')}", f"{parts.scheme}://{parts.netloc}"


def settings_from(url: str, config: S3Config | None,
                  env: Mapping[str, str] | None = None) -> S3Settings:
    """The URL plus ``[repository.s3]``, falling back to the AWS environment for the rest.
    An endpoint in a restic-style URL wins over the config's."""
    url, url_endpoint = from_restic_form(url)
    bucket, prefix = parse_s3_url(url)
    env = os.environ if env is None else env

    def secret(ref: SecretRef | None, what: str, variable: str) -> Secret | None:
        if ref is not None:
            return resolve_secret(ref, f"S3 {what}", env=env)
        return Secret(env[variable]) if env.get(variable) else None

    return S3Settings(
        bucket=bucket,
        prefix=prefix,
        endpoint=url_endpoint or (config and config.endpoint)
        or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
        region=(config and config.region)
        or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        path_style=config.path_style if config else None,
        access_key_id=secret(config.access_key_id if config else None, "access key id",
                             "AWS_ACCESS_KEY_ID"),
        secret_access_key=secret(config.secret_access_key if config else None, "secret access key",
                                 "AWS_SECRET_ACCESS_KEY"),
        session_token=secret(config.session_token if config else None, "session token",
                             "AWS_SESSION_TOKEN"),
    )
