"""TUI tests: the real app in Textual's pilot, over a real repository and journal made by
the real `vault` command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vault_tui.app import VaultApp
from vault_tui.context import TuiContext


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every TUI test runs in its own tmp_path, never in the checkout: the app proposes
    paths beside where it runs (a files restore into ./restore-<id>, an export into .),
    and a test that confirmed one wrote into the checkout (8fbb54d committed the
    restore-f805f5cb/ made so). A test that wants another directory chdirs after this."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def files_source(vault_env, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A config with one files source `docs` (used through VAULT_CONFIG)."""
    data = tmp_path / "docs"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha\n")
    (data / "sub" / "b.txt").write_text("beta\n")
    config = tmp_path / "vault.toml"
    config.write_text(f'[[sources]]\ntype = "files"\nname = "docs"\npaths = ["{data}"]\n')
    vault_env.env["VAULT_CONFIG"] = str(config)
    return data


@pytest.fixture
def make_app(vault_env) -> Callable[..., VaultApp]:  # type: ignore[no-untyped-def]
    """A VaultApp over the test's environment (VAULT_CONFIG, VAULT_REPOSITORY, ...)."""

    def make(**kwargs: object) -> VaultApp:
        config = vault_env.env.get("VAULT_CONFIG")
        ctx = TuiContext(config_path=Path(config) if config else None)
        kwargs.setdefault("poll_seconds", 0.1)
        return VaultApp(ctx, **kwargs)  # type: ignore[arg-type]

    return make
