from petridish.lab.store.base import FINISHED, RunRecord, Store
from petridish.lab.store.memory import MemoryStore
from petridish.lab.store.sql import SQLStore, store_url


def open_store(target: "str | Store | None" = None, *, read_only: bool = False) -> Store:
    """A Store from a Store, a SQLAlchemy URL, a directory, or None (./petridish-runs).

    ``read_only``: an existing store, opened for reading (`petridish runs/show/report/export`, the
    dashboard): a mistyped path is an error that says so, not a new empty store created there."""
    if isinstance(target, Store):
        return target
    if target == "memory":
        return MemoryStore()
    return SQLStore(target, read_only=read_only)


__all__ = ["FINISHED", "RunRecord", "Store", "MemoryStore", "SQLStore", "open_store", "store_url"]
