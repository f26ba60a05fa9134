"""vault.toml: its models (`model`), the document side with line numbers (`document`), and
secret references (`secrets`)."""
