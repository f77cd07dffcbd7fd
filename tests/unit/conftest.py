import pytest

from tests.unit.helpers import make_context


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)
