"""A copy with new ids adds records: one rule, in the core, for every path (CLI, TUI, a
queued job)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.errors import UsageError
from vault.sources.entities import check_copy_mode


def test_the_core_refuses_a_copy_with_new_ids_that_would_overwrite(tmp_path: Path) -> None:
    """The rule lives in the core (every path: CLI, TUI, a queued job), not only in the
    front ends: the restore request refuses it before reading anything."""
    from vault.config.model import load_config
    from vault.operations.restore import run_restore
    from vault.planning.restore_request import RestoreRequest
    from vault.runtime.app import Vault

    config = load_config(None, overrides={"repository.url": str(tmp_path / "no-repo"),
                                          "state_dir": str(tmp_path / "state")})
    vault = Vault(config)
    try:
        with pytest.raises(UsageError, match="merge or new-target"):
            run_restore(vault, RestoreRequest(snapshot_ref="latest", mode="overwrite",
                                              remap_ids=True))
    finally:
        vault.close()


@pytest.mark.parametrize("mode", [None, "new", "merge", "new-target"])
def test_modes_that_add_take_a_copy(mode: str | None) -> None:
    check_copy_mode(True, mode)


@pytest.mark.parametrize("mode", ["overwrite", "replace"])
def test_modes_that_overwrite_do_not(mode: str) -> None:
    check_copy_mode(False, mode)  # no copy: anything goes
    with pytest.raises(UsageError, match="merge or new-target"):
        check_copy_mode(True, mode)
