import os

import pytest

# Keep generated data sets out of the user's home and shared across the test session.
os.environ.setdefault("PETRIDISH_CACHE", os.path.join(os.path.dirname(__file__), "..", ".petridish-cache"))


@pytest.fixture
def store_dir(tmp_path):
    return str(tmp_path / "runs")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is faster than two and immune to a busy machine.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
