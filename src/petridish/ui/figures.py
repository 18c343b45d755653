"""The experiment's own figure of a run, as PNG bytes, rendered on demand and cached.

The cache key is the run id and its stored cells' status counts, so a figure is redrawn only
when a cell lands or changes status. Matplotlib is not thread-safe: one figure is drawn at a time.
"""
from __future__ import annotations

import io
import threading
from collections import OrderedDict

from petridish.lab.experiment import Cell, Experiment
from petridish.lab.report import draw, plt
from petridish.lab.store import RunRecord


class FigureCache:
    def __init__(self, size: int):
        self.size = size
        self._png: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def png(self, exp: Experiment, run: RunRecord, cells: list[Cell]) -> bytes:
        key = (run.id, len(cells), tuple(sorted((c.status for c in cells))).__hash__())
        with self._lock:
            if key in self._png:
                self._png.move_to_end(key)
                return self._png[key]
            fig = draw(exp, run.config, cells)
            try:
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=80)
            finally:
                plt.close(fig)
            data = buf.getvalue()
            if self.size:
                self._png[key] = data
                while len(self._png) > self.size:
                    self._png.popitem(last=False)
            return data
