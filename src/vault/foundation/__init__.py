"""The bottom layer: small pieces with no other vault dependency but `vault.errors` (units,
progress, paths, process liveness, the actor on events, read-only SQLite opens)."""
