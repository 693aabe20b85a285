"""Shared test settings: slow end-to-end tests run only where PANOVLM_SLOW_TESTS=1 (CI sets it)."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PANOVLM_SLOW_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set PANOVLM_SLOW_TESTS=1 (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Stored verdicts go to a fresh folder per test, never to the user's cache."""
    monkeypatch.setenv("SANITIZE_STATE_HOME", str(tmp_path_factory.mktemp("state")))
