from petridish.lab.store.base import FINISHED, RunRecord, Store
from petridish.lab.store.memory import MemoryStore
from petridish.lab.store.sql import SQLStore, store_url


def open_store(target: "str | Store | None" = None) -> Store:
    """A Store from a Store, a SQLAlchemy URL, a directory, or None (./petridish-runs)."""
    if isinstance(target, Store):
        return target
    if target == "memory":
        return MemoryStore()
    return SQLStore(target)


__all__ = ["FINISHED", "RunRecord", "Store", "MemoryStore", "SQLStore", "open_store", "store_url"]
