"""The suite uses taskq's own pytest plugin (taskq.testing). Installed, its pytest11 entry
point loads it; from a checkout whose metadata predates the entry point, it is loaded here."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    manager = config.pluginmanager
    if not (manager.has_plugin("taskq") or manager.has_plugin("taskq.testing")):
        manager.import_plugin("taskq.testing")
