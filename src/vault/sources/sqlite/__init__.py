"""SQLite databases as a source: capture, restore (whole, tables, row by row, entities), secrets."""
