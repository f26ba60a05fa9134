"""The CLI edge of `vault restore`: old option names become the core's request fields."""

from __future__ import annotations

import pytest

from vault.cli.restore_options import legacy_mode
from vault.errors import UsageError
from vault.planning.restore_request import RestoreMode


def test_old_names_map_onto_the_modes() -> None:
    assert legacy_mode(None, None, None) == (None, None, False)
    assert legacy_mode("new", None, None) == (RestoreMode.NEW_TARGET, None, False)
    assert legacy_mode("replace", "skip", None) == (RestoreMode.REPLACE, "skip", False)
    assert legacy_mode("new-target", None, None) == (RestoreMode.NEW_TARGET, None, False)
    assert legacy_mode(None, None, "always") == (RestoreMode.MERGE, "overwrite", False)
    assert legacy_mode(None, None, "if-changed") == (RestoreMode.MERGE, "overwrite", True)
    assert legacy_mode(None, None, "never") == (RestoreMode.MERGE, "skip", False)


@pytest.mark.parametrize(("mode", "on_conflict"), [("merge", None), (None, "skip")])
def test_overwrite_is_one_spelling_or_the_other(mode: str | None,
                                                 on_conflict: str | None) -> None:
    with pytest.raises(UsageError, match="--overwrite is the old spelling"):
        legacy_mode(mode, on_conflict, "never")  # type: ignore[arg-type]
