import os

import pytest

# Keep generated data sets out of the user's home and shared across the test session.
os.environ.setdefault("PETRIDISH_CACHE", os.path.join(os.path.dirname(__file__), "..", ".petridish-cache"))


@pytest.fixture
def store_dir(tmp_path):
    return str(tmp_path / "runs")
