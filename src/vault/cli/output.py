"""Rendering for humans and machines.

Human output goes to stdout, diagnostics and the progress bar to stderr (the bar only on
a terminal). With `--json`, stdout carries JSON lines only: `{"type": "progress", ...}`
records while work runs (or per-item records such as `{"type": "delivery", ...}`) and
exactly one final `{"type": "summary", ...}` or `{"type": "error", ...}` record.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any, TextIO

from vault.foundation.progress import ProgressUpdate
from vault.foundation.units import human_bytes


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def printable(name: str) -> str:
    """A file name fit for a terminal, as `ls -b` shows it: control characters (ESC,
    newline, ...) and bytes that are not UTF-8 become backslash escapes, so a hostile
    name can neither move the cursor nor forge a line of output."""
    if name.isprintable():
        return name
    out = []
    for ch in name:
        if "\udc80" <= ch <= "\udcff":  # an undecodable byte (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def dumps(record: dict[str, Any]) -> str:
    # ASCII with \u escapes: always valid UTF-8, even for file names that are not
    # (their undecodable bytes travel as \udcXX surrogate escapes).
    return json.dumps(record, default=_default, ensure_ascii=True, sort_keys=False)


class Output:
    def __init__(self, *, json_mode: bool, quiet: bool, command: str,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.command = command
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    # --- human ---------------------------------------------------------------------

    def line(self, text: str = "") -> None:
        if not self.json_mode:
            print(text, file=self.out)

    def info(self, text: str) -> None:
        """A note for humans (stderr); silent with --quiet or --json."""
        if not self.json_mode and not self.quiet:
            print(text, file=self.err)

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        if self.json_mode:
            return
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
        fmt = "  ".join(f"{{:{'<'}{w}}}" for w in widths)
        print(fmt.format(*headers).rstrip(), file=self.out)
        print("  ".join("-" * w for w in widths), file=self.out)
        for r in rows:
            print(fmt.format(*r).rstrip(), file=self.out)

    # --- machine -------------------------------------------------------------------

    def summary(self, **fields: Any) -> None:
        if self.json_mode:
            print(dumps({"type": "summary", "command": self.command, **fields}), file=self.out)

    def record(self, record_type: str, **fields: Any) -> None:
        """One intermediate JSON record (e.g. a `delivery`) before the final one."""
        if self.json_mode:
            print(dumps({"type": record_type, "command": self.command, **fields}),
                  file=self.out, flush=True)

    def error(self, kind: str, message: str, exit_code: int) -> None:
        if self.json_mode:
            print(dumps({"type": "error", "command": self.command, "error": kind,
                         "message": message, "exit_code": exit_code}), file=self.out)
        else:
            print(f"vault: error: {message}", file=self.err)

    def progress_reporter(self) -> JsonProgress | TerminalProgress | None:
        if self.json_mode:
            return JsonProgress(self)
        if not self.quiet and self.err.isatty():
            return TerminalProgress(self.err)
        return None


class JsonProgress:
    def __init__(self, output: Output) -> None:
        self.output = output

    def report(self, update: ProgressUpdate) -> None:
        print(dumps({"type": "progress", "command": self.output.command, **vars(update)}),
              file=self.output.out, flush=True)


class TerminalProgress:
    """One self-overwriting status line on stderr."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last = 0.0

    def report(self, u: ProgressUpdate) -> None:
        now = time.monotonic()
        if not u.final and now - self._last < 0.2:
            return
        self._last = now
        parts = [f"{u.phase:8}"]
        if u.bytes_total:
            pct = min(100.0, 100 * u.bytes_done / u.bytes_total)
            filled = int(pct / 5)
            parts.append(f"[{'#' * filled}{'.' * (20 - filled)}] {pct:5.1f}%")
            parts.append(f"{human_bytes(u.bytes_done)}/{human_bytes(u.bytes_total)}")
        else:
            parts.append(human_bytes(u.bytes_done))
        parts.append(f"{human_bytes(int(u.rate_bps))}/s")
        if u.items_total:
            parts.append(f"{u.items_done}/{u.items_total} items")
        if u.eta_seconds is not None and not u.final:
            parts.append(f"ETA {format_duration(u.eta_seconds)}")
        text = "  ".join(parts)
        end = "\n" if u.final else ""
        self.stream.write(f"\r\x1b[2K{text}{end}")
        self.stream.flush()


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
