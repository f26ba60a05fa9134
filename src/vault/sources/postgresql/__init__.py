"""PostgreSQL as a source: pg_dump capture, restore (pg_restore, row by row, entities),
secrets, and `pg_dump -Fc` files read as its items."""
