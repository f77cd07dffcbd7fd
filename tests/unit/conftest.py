import os

import pytest

from tests.unit.helpers import make_context


@pytest.fixture(autouse=True)
def _no_deployment_settings(monkeypatch):
    """Unit tests see the defaults only, whatever RECOUVREMENT_* the shell exports."""
    for name in [n for n in os.environ if n.startswith("RECOUVREMENT_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)
