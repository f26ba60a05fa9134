"""vault: encrypted, deduplicated backups and exact restores for self-hosted applications.

The core library. It never imports the TUI (`vault_tui`) or Textual; only `vault.cli`
imports click and only `vault.jobs` imports huey.
"""

__version__ = "0.1.0"
