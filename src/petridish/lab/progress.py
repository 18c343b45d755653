"""A progress bar with ETA and cells done/total on stderr; silent when not on a TTY."""
from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, done: int, *, label: str, enabled: bool | None = None):
        on = sys.stderr.isatty() if enabled is None else enabled
        self._bar = tqdm(total=total, initial=done, desc=label, unit="cell", file=sys.stderr,
                         disable=not on, dynamic_ncols=True, smoothing=0.1)

    def advance(self, n: int) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()
