"""Moving snapshots between repositories (`vault export` / `vault import`) and importing
foreign files (SQLite databases, tar and ZIP archives) as new snapshots. See docs/export.md."""
