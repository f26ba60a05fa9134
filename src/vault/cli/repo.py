"""Commands about the repository itself: init, stats, key, locks (status: status_cmd)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from vault.cli.main import CliState, output_options, pass_state
from vault.config.secrets import SecretRef, resolve_secret
from vault.errors import SecretUnavailable, UsageError
from vault.foundation.units import human_bytes
from vault.operations import manage, usage_figures
from vault.planning.status_report import format_age
from vault.repository.lock import list_locks
from vault.repository.repository import Repository, read_config
from vault.runtime.app import Vault


def _new_passphrase(state: CliState, file: Path | None, what: str) -> str:
    """A new passphrase: --new-password-file, VAULT_NEW_PASSWORD(_FILE), or typed twice."""
    if file is None and os.environ.get("VAULT_NEW_PASSWORD_FILE"):
        file = Path(os.environ["VAULT_NEW_PASSWORD_FILE"])
    if file is not None:
        # The same reader as --password-file, so what opens later is what was stored.
        return resolve_secret(SecretRef(file=file), what)
    if os.environ.get("VAULT_NEW_PASSWORD"):
        return os.environ["VAULT_NEW_PASSWORD"]
    if not sys.stdin.isatty():
        raise UsageError(f"no {what}: use --new-password-file or VAULT_NEW_PASSWORD")
    return str(click.prompt(what, hide_input=True, confirmation_prompt=True, err=True))


@click.command()
@click.option("--chunk-size", "chunk_kib", type=int, default=None,
              help="Average chunk size in KiB (default from the config: 1024).")
@click.option("--copy-chunker-params-from", "chunker_from", metavar="NAME",
              help="Cut chunks exactly as the [[repositories]] entry NAME does, so `vault "
                   "copy` between the two shares data with backups (docs/offsite.md).")
@output_options
@pass_state
def init(state: CliState, chunk_kib: int | None, chunker_from: str | None) -> None:
    """Create a new encrypted repository.

    The passphrase comes from --password-file/--password-command, VAULT_PASSWORD,
    VAULT_PASSWORD_FILE, VAULT_PASSWORD_COMMAND, the config, or a prompt (typed twice).
    """
    vault = state.vault()
    chunker_of = _chunker_source(vault, chunker_from, chunk_kib)
    opts = vault.passphrase_options
    prompt, opts.prompt = opts.prompt, None  # a new passphrase is typed twice, not once
    try:
        passphrase = vault.passphrase()
    except SecretUnavailable:
        if prompt is None:
            raise
        passphrase = str(click.prompt("new repository passphrase", hide_input=True,
                                      confirmation_prompt=True, err=True))
    finally:
        opts.prompt = prompt
    avg = (chunk_kib or vault.config.repository.chunk_avg_kib) * 1024
    repo = manage.init_repository(vault, passphrase, avg, chunker_of)
    out = state.output()
    out.line(f"created repository {repo.id[:12]} at {repo.location}")
    out.info("keep the passphrase safe: without it the data cannot be recovered")
    out.summary(repo_id=repo.id, repository=repo.location, key_id=repo.key_id)


def _chunker_source(vault: Vault, name: str | None, chunk_kib: int | None) -> Repository | None:
    """The repository whose chunker `init --copy-chunker-params-from` copies (opened with
    its own configured passphrase), or None."""
    if name is None:
        return None
    if chunk_kib is not None:
        raise UsageError("--chunk-size and --copy-chunker-params-from exclude each other")
    from vault.operations.copy import configured_vault

    other, _ = configured_vault(vault, name, "--copy-chunker-params-from")
    try:
        return other.repository()
    finally:
        other.close()


@click.command()
@click.option("--refresh", is_flag=True,
              help="List the repository again for the stored size and object counts.")
@output_options
@pass_state
def stats(state: CliState, refresh: bool) -> None:
    """Storage used, deduplication and compression ratios, new data per snapshot."""
    vault = state.vault()
    repo = vault.repository()
    totals, snaps = manage.repository_stats(repo)
    listed = usage_figures.current(vault.config.resolved_state_dir(), repo.id, repo.storage,
                                   refresh=refresh)
    out = state.output()
    out.line(f"snapshots:          {totals.snapshots}")
    out.line(f"stored (packs):     {human_bytes(totals.stored_bytes)} in {totals.packs} packs")
    out.line(f"stored (listing):   {human_bytes(listed.stored_bytes)} in "
             f"{listed.objects.get('data', 0)} packs, {listed.objects.get('index', 0)} index "
             f"files, {listed.objects.get('snapshots', 0)} snapshots (measured "
             f"{format_age(datetime.now(UTC) - listed.measured_at)} ago)")
    out.line(f"unique data:        {human_bytes(totals.unique_bytes)} in {totals.blobs} blobs")
    out.line(f"logical data:       {human_bytes(totals.logical_bytes)} (all snapshots)")
    out.line(f"dedup ratio:        {totals.dedup_ratio:.2f}x")
    out.line(f"compression ratio:  {totals.compression_ratio:.2f}x")
    out.line(f"space saving:       {totals.saving_percent:.1f}%")
    by_path: dict[str, int] = {}
    for s in snaps:
        for p in s.paths:
            by_path[p] = by_path.get(p, 0) + s.summary.bytes_stored
    out.line()
    out.table(["snapshot", "time", "raw", "new", "stored"],
              [[s.short_id, s.time.strftime("%Y-%m-%d %H:%M"), human_bytes(s.summary.bytes_raw),
                human_bytes(s.summary.bytes_new), human_bytes(s.summary.bytes_stored)]
               for s in snaps])
    out.summary(**vars(totals), dedup_ratio=totals.dedup_ratio,
                listing={"measured_at": listed.measured_at.isoformat(),
                         "stored_bytes": listed.stored_bytes, "objects": listed.objects,
                         "bytes": listed.sizes},
                saving_percent=totals.saving_percent,
                compression_ratio=totals.compression_ratio,
                per_snapshot=[{"id": s.id, "bytes_raw": s.summary.bytes_raw,
                               "bytes_new": s.summary.bytes_new,
                               "bytes_stored": s.summary.bytes_stored} for s in snaps],
                per_source=by_path)


@click.group()
def key() -> None:
    """Manage the passphrases (key files) that unlock the repository."""


@key.command("list")
@output_options
@pass_state
def key_list(state: CliState) -> None:
    """List key files; the one in use is marked with *."""
    repo = state.vault().repository()
    keys = manage.list_keys(repo)
    state.output().table(
        ["", "id", "created", "user@host", "label"],
        [["*" if k.key_id == repo.key_id else "", k.key_id[:12], k.created[:19],
          f"{k.user}@{k.host}", k.label or ""] for k in keys])
    state.output().summary(keys=[{"id": k.key_id, "created": k.created, "user": k.user,
                                  "host": k.host, "label": k.label,
                                  "current": k.key_id == repo.key_id} for k in keys])


@key.command("add")
@click.option("--new-password-file", type=click.Path(path_type=Path),
              help="File holding the new passphrase.")
@click.option("--label", help="A note to tell keys apart.")
@output_options
@pass_state
def key_add(state: CliState, new_password_file: Path | None, label: str | None) -> None:
    """Add a passphrase that also unlocks the repository."""
    vault = state.vault()
    vault.repository()
    new = _new_passphrase(state, new_password_file, "new passphrase")
    key_id = manage.add_key(vault, new, label)
    state.output().line(f"added key {key_id[:12]}")
    state.output().summary(key_id=key_id)


@key.command("remove")
@click.argument("key_id")
@output_options
@pass_state
def key_remove(state: CliState, key_id: str) -> None:
    """Remove a key file (not the one in use)."""
    removed = manage.remove_key(state.vault(), key_id)
    state.output().line(f"removed key {removed[:12]}")
    state.output().summary(key_id=removed)


@key.command("passwd")
@click.option("--new-password-file", type=click.Path(path_type=Path),
              help="File holding the new passphrase.")
@output_options
@pass_state
def key_passwd(state: CliState, new_password_file: Path | None) -> None:
    """Change the passphrase of the key in use."""
    vault = state.vault()
    vault.repository()
    new = _new_passphrase(state, new_password_file, "new passphrase")
    key_id = manage.change_passphrase(vault, new)
    state.output().line(f"passphrase changed (new key {key_id[:12]})")
    state.output().summary(key_id=key_id)


@click.command()
@output_options
@pass_state
def locks(state: CliState) -> None:
    """List repository locks and whether each is active or stale.

    Stale locks (dead process, or heartbeat older than the lease) are removed
    automatically by the next operation; nothing needs unlocking by hand.
    """
    vault = state.vault()
    read_config(vault.storage)  # a clear error when there is no repository
    infos = list_locks(vault.storage)
    state.output().table(
        ["id", "kind", "holder", "since", "heartbeat", "state"],
        [[i.lock_id[:12], "exclusive" if i.exclusive else "shared", i.holder,
          i.created.isoformat()[:19], i.heartbeat.isoformat()[:19], i.state] for i in infos])
    state.output().summary(locks=[{"id": i.lock_id, "exclusive": i.exclusive,
                                   "holder": i.holder, "since": i.created,
                                   "heartbeat": i.heartbeat, "state": i.state} for i in infos])


COMMANDS = [init, stats, key, locks]
