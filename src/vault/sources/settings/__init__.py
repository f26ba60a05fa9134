"""An application's settings as a source: JSON/TOML/YAML/.env files or a SQLite settings table."""
