"""Independent random streams per purpose, derived from one cell seed.

One integer seed used for everything gives identical streams to unrelated purposes: with
``torch.manual_seed(seed)`` driving both the label-noise mask and the first layer's weights,
the corrupted examples were exactly those whose first-layer weight fell below a threshold.
``sub_seed(seed, "label_noise")`` and ``sub_seed(seed, "init")`` are instead independent
draws: numpy's ``SeedSequence`` hashes (seed, purpose) with a well-mixed bijection, the
mechanism ``SeedSequence.spawn`` uses, keyed by a stable hash of the purpose's name so that
adding a new purpose never changes an existing one's stream.
"""
from __future__ import annotations

import zlib

import numpy as np

PURPOSES = ("data", "label_noise", "init", "batches", "features", "probe", "bootstrap", "attack")


def sub_seed(seed: int, purpose: str) -> int:
    """A 31-bit seed for ``purpose``, independent of every other purpose's for the same ``seed``.

    Deterministic across platforms and Python versions (crc32 of the name, not ``hash``).
    """
    key = zlib.crc32(purpose.encode("utf-8"))
    state = np.random.SeedSequence(entropy=int(seed), spawn_key=(key,)).generate_state(1, dtype=np.uint32)
    return int(state[0] >> 1)            # fits torch.manual_seed and numpy alike


def generator(seed: int, purpose: str):
    """A ``torch.Generator`` seeded with ``sub_seed(seed, purpose)``."""
    import torch
    g = torch.Generator()
    g.manual_seed(sub_seed(seed, purpose))
    return g


def rng(seed: int, purpose: str) -> np.random.Generator:
    """A numpy ``Generator`` on the stream of ``purpose``."""
    return np.random.default_rng(sub_seed(seed, purpose))
