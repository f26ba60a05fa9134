"""`vault export` and `vault import`: snapshots between repositories, foreign files in."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from vault.cli.common import latest_options, pinned_ref, reporter_for, snapshot_criteria
from vault.cli.main import CliState, output_options, pass_state
from vault.config.secrets import Secret, SecretRef, resolve_secret
from vault.errors import EXIT_PARTIAL, UsageError, VaultError
from vault.foundation.units import human_bytes
from vault.operations.export import repository_key, run_export
from vault.operations.import_export import AskPassphrase
from vault.operations.importer import FORMATS, prepare_import, run_import
from vault.runtime.app import Vault
from vault.transfer.format import KEY_REPOSITORY
from vault.transfer.reader import ExportFile
from vault.transfer.writer import ExportKey

WHAT = "export passphrase"


def _prompting_once(state: CliState) -> Vault:
    """The vault, its passphrase prompt remembering what was typed: the repository's
    passphrase opens the repository and (by default) keys the export, asked for once."""
    vault = state.vault()
    opts = vault.passphrase_options
    ask = opts.prompt
    if ask is not None:
        typed: list[str] = []

        def once() -> str:
            if not typed:
                typed.append(ask())
            return typed[0]

        opts.prompt = once
    return vault


def _file_passphrase(password_file: Path | None,
                     password_command: str | None) -> Secret | None:
    """A passphrase given for the export file: --password-file / --password-command >
    VAULT_EXPORT_PASSWORD > VAULT_EXPORT_PASSWORD_FILE > VAULT_EXPORT_PASSWORD_COMMAND."""
    if password_file is not None and password_command is not None:
        raise UsageError("give either --password-file or --password-command, not both")
    if password_command is not None:
        return resolve_secret(SecretRef(command=password_command), WHAT)
    if password_file is not None:
        return resolve_secret(SecretRef(file=password_file), WHAT)
    if os.environ.get("VAULT_EXPORT_PASSWORD"):
        return Secret(os.environ["VAULT_EXPORT_PASSWORD"])
    if os.environ.get("VAULT_EXPORT_PASSWORD_FILE"):
        return resolve_secret(SecretRef(file=Path(os.environ["VAULT_EXPORT_PASSWORD_FILE"])),
                              WHAT)
    if os.environ.get("VAULT_EXPORT_PASSWORD_COMMAND"):
        return resolve_secret(SecretRef(command=os.environ["VAULT_EXPORT_PASSWORD_COMMAND"]),
                              WHAT)
    return None


def _export_key(state: CliState, password_file: Path | None, password_command: str | None,
                ask: bool, no_encrypt: bool) -> ExportKey | None:
    given = _file_passphrase(password_file, password_command)
    if no_encrypt:
        if given is not None or ask:
            raise UsageError("--no-encrypt and an export passphrase contradict each other")
        return None
    if ask:
        if not sys.stdin.isatty():
            raise UsageError("--password-prompt needs a terminal")
        return ExportKey(Secret(click.prompt(WHAT, hide_input=True, confirmation_prompt=True,
                                             err=True)))
    if given is not None:
        return ExportKey(given)
    return repository_key(state.vault())


_PASSWORD_FILE_HELP = "The export file's passphrase is in this file (mode 0600)."
_PASSWORD_COMMAND_HELP = "Command that prints the export file's passphrase."


@click.command("export")
@click.argument("snapshot")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The export file to write (must not exist yet; created mode 0600).")
@click.option("--password-file", "password_file", type=click.Path(path_type=Path),
              help=_PASSWORD_FILE_HELP + " Default: the repository's passphrase.")
@click.option("--password-command", "password_command", help=_PASSWORD_COMMAND_HELP)
@click.option("--password-prompt", "ask", is_flag=True,
              help="Type a passphrase for the export file (twice).")
@click.option("--no-encrypt", is_flag=True,
              help="Write the export unencrypted (anyone who reads it reads the data).")
@latest_options
@output_options
@pass_state
def export_cmd(state: CliState, snapshot: str, output: Path, password_file: Path | None,
               password_command: str | None, ask: bool, no_encrypt: bool,
               pick_source: str | None, pick_path: str | None, pick_host: str | None) -> None:
    """Write SNAPSHOT (a snapshot, a group's name or a group id) to one checksummed file.

    `vault import` reads it into any repository. The file is encrypted (AES-256-GCM,
    scrypt) with a passphrase given for it, else with the repository's own passphrase;
    --no-encrypt writes it in the clear, with a warning. A group's members go into one
    file; a settings snapshot's sealed secrets are re-sealed for the file.
    """
    out = state.output()
    vault = _prompting_once(state)
    if snapshot not in {g.name for g in vault.config.groups} and not snapshot.startswith(
            "group-"):  # one snapshot: `latest` means one source's (docs/cli.md)
        _, snapshot = pinned_ref(vault.repository(), snapshot,
                                 snapshot_criteria(pick_source, pick_path, pick_host))
    key = _export_key(state, password_file, password_command, ask, no_encrypt)
    result = run_export(vault, snapshot, output, key, reporter_for(out))
    warnings = [] if key is not None else [
        f"{result.path} is not encrypted: anyone who can read it can read every file and "
        "setting it holds"]
    for warning in warnings:
        if not state.json_mode:
            click.echo(f"warning: {warning}", err=True)
    ids = " ".join(s.short_id for s in result.snapshots)
    out.line(f"exported snapshot{'s' if len(result.snapshots) > 1 else ''} {ids} to "
             f"{result.path}: {result.blobs} blobs, {result.trees} trees, "
             f"{human_bytes(result.bytes_plain)} -> {human_bytes(result.bytes_written)}"
             f"{_encrypted_note(key)}, {result.duration_seconds:.1f}s")
    out.summary(snapshot_id=result.snapshot.id, snapshot_ids=[s.id for s in result.snapshots],
                group=result.group, file=str(result.path), encrypted=result.encrypted,
                key=key.source if key else None, trees=result.trees, blobs=result.blobs,
                bytes_plain=result.bytes_plain, bytes_written=result.bytes_written,
                duration_seconds=result.duration_seconds, warnings=warnings)


def _encrypted_note(key: ExportKey | None) -> str:
    if key is None:
        return " (NOT encrypted)"
    if key.source == KEY_REPOSITORY:
        return " (encrypted with the repository's passphrase)"
    return " (encrypted)"


def _asker(state: CliState) -> AskPassphrase:
    """For an encrypted export given no passphrase: the importing repository's own
    passphrase when the file says it was sealed with its repository's, else a prompt."""

    def ask(export: ExportFile) -> str | None:
        if export.key_source == KEY_REPOSITORY:
            try:
                if export.try_unlock(state.vault().passphrase()):
                    return None  # already open
            except VaultError:
                pass  # no repository passphrase here: ask for the file's
        if sys.stdin.isatty():
            return str(click.prompt(WHAT, hide_input=True, err=True))
        return None

    return ask


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto",
              show_default=True, help="What FILE is (auto: detected from its content).")
@click.option("--password-file", "password_file", type=click.Path(path_type=Path),
              help=_PASSWORD_FILE_HELP)
@click.option("--password-command", "password_command", help=_PASSWORD_COMMAND_HELP)
@click.option("--as-app", "as_app", is_flag=True,
              help="Read a ZIP or tar as an application: *.db SQLite files as databases, "
                   "settings.json/.env as settings (secrets redacted), the rest as files; "
                   "one group.")
@click.option("--app-secrets", type=click.Choice(["redact", "encrypt"]), default="redact",
              show_default=True,
              help="With --as-app: redact the settings' secrets, or seal them with the "
                   "repository's key.")
@click.option("--tag", "tags", multiple=True, help="Tag the new snapshot (repeatable).")
@click.option("-n", "--dry-run", is_flag=True,
              help="Check FILE and show the preview; import nothing.")
@output_options
@pass_state
def import_cmd(state: CliState, file: Path, fmt: str, password_file: Path | None,
               password_command: str | None, as_app: bool, app_secrets: str,
               tags: tuple[str, ...], dry_run: bool) -> None:
    """Add FILE to the repository as a new snapshot (or several: a group's export).

    FILE is a `vault export` file (checked: checksum, version; older formats are
    migrated; an encrypted one opens with --password-file/--password-command,
    VAULT_EXPORT_PASSWORD, this repository's passphrase if it was sealed with its
    repository's, or a prompt), a SQLite database, or a tar or ZIP archive. Archive
    members with absolute paths, `..`, links or special files are refused and listed;
    nothing is extracted.
    """
    out = state.output()
    _prompting_once(state)
    prepared = prepare_import(file, fmt, _file_passphrase(password_file, password_command),
                              _asker(state), as_app=as_app)
    preview = prepared.preview
    out.line(_preview_line(preview))
    refused = preview.get("refused", [])
    for item in refused[:50]:
        out.line(f"refused: {item['path']}: {item['error']}")
    if dry_run:
        out.summary(dry_run=True, preview=preview)
        return
    result = run_import(state.vault(), prepared, reporter_for(out), list(tags),
                        app_secrets)  # type: ignore[arg-type]
    many = len(result.snapshots) > 1
    out.line(f"imported {file} as snapshot{'s' if many else ''} "
             f"{' '.join(s.short_id for s in result.snapshots)}: {result.files} "
             f"files, {human_bytes(result.bytes_raw)} ({human_bytes(result.bytes_new)} new)"
             f"{f', {len(result.refused)} member(s) refused' if result.refused else ''}")
    out.summary(snapshot_id=result.snapshot.id,
                snapshot_ids=[s.id for s in result.snapshots],
                group_id=result.snapshot.group_id if many else None,
                format=result.format, files=result.files,
                bytes_raw=result.bytes_raw, bytes_new=result.bytes_new,
                refused=[p.model_dump() for p in result.refused],
                duration_seconds=result.duration_seconds, dry_run=False, preview=preview)
    if result.refused:
        raise click.exceptions.Exit(EXIT_PARTIAL)


def _preview_line(p: dict[str, object]) -> str:
    if p["format"] == "vault":
        return (f"export of snapshot {str(p['snapshot_id'])[:8]} ({p['source_type']}) from "
                f"{p['host']} at {p['time']}: {p['files']} files, "
                f"{human_bytes(int(str(p['bytes'])))}, format version {p['format_version']}"
                f"{', encrypted' if p['encrypted'] else ''}")
    if p["format"] == "sqlite":
        return f"SQLite database {p['file']} ({human_bytes(int(str(p['bytes'])))})"
    refused = p.get("refused") or []
    app = p.get("app")
    layout = (f" (as application {app['name']}: {len(app['databases'])} database(s), "  # type: ignore[index]
              f"{len(app['settings'])} settings file(s), {app['files']} other file(s))"  # type: ignore[index]
              if app else "")
    return (f"{p['format']} archive {p['file']}: {p['files']} files, "
            f"{human_bytes(int(str(p['bytes'])))}, {len(refused)} member(s) refused{layout}")  # type: ignore[arg-type]


COMMANDS = [export_cmd, import_cmd]
