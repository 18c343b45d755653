"""A sweep's progress, seen from the driver: cells done/failed, training steps, an ETA.

Tasks report ``(done, total)`` training steps while they run (``petridish.steps``,
forwarded by the executors); cells are counted as tasks end. The bar (tqdm, on stderr,
never stdout) counts cells until the first step report and training steps from then on,
so it moves while one ensemble of many cells trains. Steps of tasks that have not
reported yet are estimated from those that have (mean steps per cell), so the total
settles as the sweep goes. ``snapshot()`` is what the store's run record carries as
``provenance["progress"]``; ``publish`` receives it at most every ``publish_every``
seconds and once at the end.

The bar is shown when stderr is a terminal; ``enabled`` or the environment variable
``PETRIDISH_PROGRESS`` (1/0) forces it on or off.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from tqdm import tqdm

PUBLISH_EVERY_S = 2.0      # seconds between two progress writes to the store (the dashboard polls)


def bar_enabled(enabled: bool | None) -> bool:
    if enabled is not None:
        return bool(enabled)
    env = os.environ.get("PETRIDISH_PROGRESS", "").strip().lower()
    if env in ("1", "true", "yes", "on"):
        return True
    if env in ("0", "false", "no", "off"):
        return False
    return sys.stderr.isatty()


@dataclass
class _TaskSteps:
    cells: int
    done: int = 0          # training steps, clamped to total
    total: int = 0         # expected steps; 0 = never reported
    ended: bool = False


class Progress:
    def __init__(self, total: int, done: int, *, label: str, enabled: bool | None = None,
                 publish: Callable[[dict[str, Any]], None] | None = None, publish_every: float | None = None):
        self.cells_total, self.cells_done, self.cells_failed = total, done, 0
        self._todo_cells = total - done                      # cells this session computes
        self._tasks: dict[int, _TaskSteps] = {}              # id(task) -> its steps
        self._unreported_ended = 0                           # ended cells whose task never reported steps
        self._publish = publish
        self._every = PUBLISH_EVERY_S if publish_every is None else publish_every
        self._last_publish = time.monotonic()
        self._t0 = time.monotonic()
        self._shown = 0                                      # steps done as shown (never goes down)
        self._steps_mode = False
        self._bar = tqdm(total=total, initial=done, desc=label, unit="cell", file=sys.stderr,
                         disable=not bar_enabled(enabled), dynamic_ncols=True, smoothing=0.1)

    # -- events ----------------------------------------------------------------------------------
    def task_steps(self, task_id: int, cells: int, done: int, total: int) -> None:
        """A running task's cumulative training steps."""
        t = self._tasks.setdefault(task_id, _TaskSteps(cells))
        if t.ended:
            return
        t.total = max(t.total, int(total))
        t.done = min(max(t.done, int(done)), t.total)
        self._changed()

    def task_ended(self, task_id: int, cells: int, failed: int) -> None:
        """A task ended with ``cells`` cells, ``failed`` of them failed: its steps count as all done."""
        t = self._tasks.get(task_id)
        if t is None or t.total == 0:
            self._unreported_ended += cells
        else:
            t.done = t.total
        if t is not None:
            t.ended = True
        self.cells_done += cells - failed
        self.cells_failed += failed
        self._changed()

    # -- state -----------------------------------------------------------------------------------
    def steps(self) -> tuple[int, int]:
        """(done, total) training steps of this session's cells. Steps per cell are estimated from the
        tasks that ended (their totals are complete), else from the running ones (a running task's
        total can still grow, one training loop after another); the estimate stands in for tasks not
        heard from and is a floor for running ones."""
        known = [t for t in self._tasks.values() if t.total > 0]
        if not known:
            return 0, 0
        basis = [t for t in known if t.ended] or known
        per_cell = sum(t.total for t in basis) / sum(t.cells for t in basis)
        floor = per_cell if basis is not known else 0.0
        total = sum(t.total if t.ended else max(t.total, floor * t.cells) for t in known)
        total += per_cell * max(0, self._todo_cells - sum(t.cells for t in known))
        done = sum(t.done for t in known) + per_cell * self._unreported_ended
        return int(round(min(done, total))), int(round(total))

    def shown_steps(self) -> tuple[int, int]:
        """``steps()`` as shown (bar and store): done never goes down when an estimate does."""
        done, total = self.steps()
        self._shown = max(self._shown, done)
        return self._shown, max(total, self._shown)

    def snapshot(self) -> dict[str, Any]:
        steps_done, steps_total = self.shown_steps()
        return {"steps_done": steps_done, "steps_total": steps_total, "cells_done": self.cells_done,
                "cells_failed": self.cells_failed, "cells_total": self.cells_total,
                "eta_s": self._eta(steps_done, steps_total), "updated": time.time()}

    def _eta(self, steps_done: int, steps_total: int) -> float | None:
        """Seconds left at this session's mean rate (steps, or cells before any step report)."""
        if steps_total:
            did, left = steps_done, steps_total - steps_done
        else:
            did = self.cells_done + self.cells_failed - (self.cells_total - self._todo_cells)
            left = self.cells_total - self.cells_done - self.cells_failed
        elapsed = time.monotonic() - self._t0
        return None if did <= 0 or elapsed <= 0 else round(left * elapsed / did, 1)

    # -- output ----------------------------------------------------------------------------------
    def _changed(self) -> None:
        self._render()
        now = time.monotonic()
        if self._publish is not None and now - self._last_publish >= self._every:
            self._last_publish = now
            self._publish(self.snapshot())

    def _render(self) -> None:
        bar = self._bar
        if bar.disable:
            return
        done, total = self.shown_steps()
        failed = f", {self.cells_failed} failed" if self.cells_failed else ""
        bar.set_postfix_str(f"cells {self.cells_done}/{self.cells_total}{failed}", refresh=False)
        if total and not self._steps_mode:             # first step report: count steps from here on
            self._steps_mode, start = True, bar.start_t
            bar.reset(total=total)
            bar.unit, bar.unit_scale, bar.start_t = "step", True, start
            bar.n = bar.last_print_n = done            # no jump in the smoothed rate
        if self._steps_mode:
            bar.total = total
        bar.update((done if self._steps_mode else self.cells_done + self.cells_failed) - bar.n)

    def close(self) -> None:
        if self._publish is not None:
            self._publish(self.snapshot())
        self._bar.close()
