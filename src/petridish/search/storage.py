"""Where the Optuna study lives: a journal file beside the petridish store.

Trials' results are cells in the petridish store (written by the driver only); the
study's own bookkeeping (sampler history, intermediate values for pruning) lives in an
Optuna JournalStorage file next to it, so a resumed search continues the same study.
A store with no directory (``memory``, a server URL) gets a temporary journal.
"""
from __future__ import annotations

import os
import tempfile

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from petridish.lab.store import Store


def journal_path_for(store: Store) -> str:
    url = str(getattr(store, "url", "") or "")
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return os.path.join(os.path.dirname(url[len("sqlite:///"):]) or ".", "optuna-journal.log")
    fd, path = tempfile.mkstemp(prefix="petridish-optuna-", suffix=".log")
    os.close(fd)
    return path


def journal_storage(path: str) -> JournalStorage:
    return JournalStorage(JournalFileBackend(path))
