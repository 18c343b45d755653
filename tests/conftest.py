import os

import pytest

# Keep generated data sets out of the user's home and shared across the test session.
os.environ.setdefault("PETRIDISH_CACHE", os.path.join(os.path.dirname(__file__), "..", ".petridish-cache"))


def in_processes(fn, items: list) -> list:
    """[fn(item) for item in items] over one spawned process per core (at most one per item, and at
    most 4: each imports torch, ~0.3 GB), for independent single-threaded checks that would leave the
    other cores idle. ``fn`` must be a module-level function of the test module (the processes
    import it by name)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    workers = max(1, min(len(items), os.cpu_count() or 1, 4))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, items))


@pytest.fixture(scope="session")
def pmap():
    """``pmap(fn, items)``: ``in_processes``."""
    return in_processes


@pytest.fixture
def store_dir(tmp_path):
    return str(tmp_path / "runs")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is faster than two and immune to a busy machine.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    from petridish.threads import pin_threads
    with pin_threads(1):
        yield


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database on the server that PETRIDISH_TEST_STORE_URL names
    (`.ci/run` starts one); its SQLAlchemy URL. Dropped afterwards. Skips without a server."""
    base = os.environ.get("PETRIDISH_TEST_STORE_URL")
    if not base:
        pytest.skip("no PostgreSQL server: set PETRIDISH_TEST_STORE_URL (as .ci/run does)")
    import uuid

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    name = "petridish_t_" + uuid.uuid4().hex[:12]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
