"""Pure planners: data in, decisions out, no I/O (retention, when schedules are due, quotas,
the status summary, include/exclude globs)."""
