"""`vault export` and `vault import`: snapshots between repositories, foreign files in."""

from __future__ import annotations

from pathlib import Path

import click

from vault.cli.common import reporter_for
from vault.cli.main import CliState, output_options, pass_state
from vault.errors import EXIT_PARTIAL
from vault.secrets import Secret, SecretRef, resolve_secret
from vault.transfer.export import run_export
from vault.transfer.importer import FORMATS, prepare_import, run_import
from vault.units import human_bytes


def _export_passphrase(path: Path | None) -> Secret | None:
    return resolve_secret(SecretRef(file=path), "export passphrase") if path else None


@click.command("export")
@click.argument("snapshot")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The export file to write (must not exist yet).")
@click.option("--password-file", "password_file", type=click.Path(path_type=Path),
              help="Encrypt the export with the passphrase in this file (mode 0600); "
                   "not the repository's passphrase.")
@output_options
@pass_state
def export_cmd(state: CliState, snapshot: str, output: Path,
               password_file: Path | None) -> None:
    """Write SNAPSHOT to one self-describing, checksummed export file.

    `vault import` reads it into any repository (which needs none of this repository's
    keys). With --password-file the file is encrypted with its own passphrase.
    """
    out = state.output()
    result = run_export(state.vault(), snapshot, output, _export_passphrase(password_file),
                        reporter_for(out))
    out.line(f"exported snapshot {result.snapshot.short_id} to {result.path}: "
             f"{result.blobs} blobs, {result.trees} trees, "
             f"{human_bytes(result.bytes_plain)} -> {human_bytes(result.bytes_written)}"
             f"{' (encrypted)' if result.encrypted else ''}, "
             f"{result.duration_seconds:.1f}s")
    out.summary(snapshot_id=result.snapshot.id, file=str(result.path),
                encrypted=result.encrypted, trees=result.trees, blobs=result.blobs,
                bytes_plain=result.bytes_plain, bytes_written=result.bytes_written,
                duration_seconds=result.duration_seconds)


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto",
              show_default=True, help="What FILE is (auto: detected from its content).")
@click.option("--password-file", "password_file", type=click.Path(path_type=Path),
              help="Passphrase of an encrypted export (mode 0600).")
@click.option("--tag", "tags", multiple=True, help="Tag the new snapshot (repeatable).")
@click.option("-n", "--dry-run", is_flag=True,
              help="Check FILE and show the preview; import nothing.")
@output_options
@pass_state
def import_cmd(state: CliState, file: Path, fmt: str, password_file: Path | None,
               tags: tuple[str, ...], dry_run: bool) -> None:
    """Add FILE to the repository as a new snapshot.

    FILE is a `vault export` file (checked: checksum, version; older formats are
    migrated), a SQLite database, or a tar or ZIP archive. Archive members with absolute
    paths, `..`, links or special files are refused and listed; nothing is extracted.
    """
    out = state.output()
    prepared = prepare_import(file, fmt, _export_passphrase(password_file))
    preview = prepared.preview
    out.line(_preview_line(preview))
    refused = preview.get("refused", [])
    for item in refused[:50]:
        out.line(f"refused: {item['path']}: {item['error']}")
    if dry_run:
        out.summary(dry_run=True, preview=preview)
        return
    result = run_import(state.vault(), prepared, reporter_for(out), list(tags))
    out.line(f"imported {file} as snapshot {result.snapshot.short_id}: {result.files} "
             f"files, {human_bytes(result.bytes_raw)} ({human_bytes(result.bytes_new)} new)"
             f"{f', {len(result.refused)} member(s) refused' if result.refused else ''}")
    out.summary(snapshot_id=result.snapshot.id, format=result.format, files=result.files,
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
    return (f"{p['format']} archive {p['file']}: {p['files']} files, "
            f"{human_bytes(int(str(p['bytes'])))}, {len(refused)} member(s) refused")  # type: ignore[arg-type]


COMMANDS = [export_cmd, import_cmd]
