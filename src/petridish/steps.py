"""Training-step progress, reported from inside training loops to whoever listens.

A training loop says how many steps it will take, then ticks once per step::

    steps.expect(cfg.steps)        # once, before the loop
    for step in range(cfg.steps):
        ...
        steps.advance()            # once per step (or advance(n) every n steps)

Nobody listens by default, and then both calls return after one ``ContextVar.get``
(tens of nanoseconds; a training step takes tens of microseconds or more). The lab's
worker listens around each task (``with steps.listen(sink): ...``): the sink receives
``(done, total)``, cumulative over every loop the task ran, at most once per
``interval`` seconds (the first report at once). ``total`` grows as each loop expects
its steps, so a task that trains three models one after another reports 0/1000,
then 1000/2000, then 2000/3000. A loop that stops early (target reached, diverged)
leaves ``done < total``; the listener's owner marks the task complete when it ends.
A caller that knows the whole count before its loops start (an experiment that trains
its group in several ensembles, one after another) may ``declare(total)`` it: the
loops' own ``expect`` calls are then ignored, and only their steps count.

Reporting reads a clock and calls the sink; it never touches tensors or random
generators, so what is computed is bitwise the same with or without a listener.
This module is the bottom of the package (it imports nothing from petridish), so
``train`` may import it without importing the lab.
"""
from __future__ import annotations

import contextvars
import time
from contextlib import contextmanager
from typing import Callable, Iterator

Sink = Callable[[int, int], None]          # (steps done, steps expected), cumulative per listener


class _Listener:
    __slots__ = ("sink", "interval", "done", "total", "declared", "_next")

    def __init__(self, sink: Sink, interval: float):
        self.sink = sink
        self.interval = interval            # seconds between reports
        self.done = 0
        self.total = 0
        self.declared = False               # declare() fixed the total: expect() adds nothing
        self._next = 0.0                    # time.monotonic() after which the next report goes out

    def maybe_send(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval
            self.sink(self.done, self.total)


_LISTENER: contextvars.ContextVar[_Listener | None] = contextvars.ContextVar("petridish_steps", default=None)


def expect(total: int) -> None:
    """A training loop announces ``total`` more steps (before its first step)."""
    lst = _LISTENER.get()
    if lst is not None and not lst.declared:
        lst.total += int(total)
        lst.maybe_send()


def declare(total: int) -> None:
    """The whole count of steps to come in this listener, known up front; later ``expect`` calls add nothing."""
    lst = _LISTENER.get()
    if lst is not None:
        lst.total, lst.declared = lst.done + int(total), True
        lst.maybe_send()


def advance(n: int = 1) -> None:
    """``n`` more steps done (call once per step, or once per ``n`` steps)."""
    lst = _LISTENER.get()
    if lst is not None:
        lst.done += n
        if lst.done <= lst.total:           # a loop that expected nothing does not run past its total
            lst.maybe_send()


@contextmanager
def listen(sink: Sink, interval: float = 0.25) -> Iterator[None]:
    """Send this block's steps to ``sink(done, total)``, at most every ``interval`` s (nested: the inner
    listener takes them). The last counts are sent on leaving, whatever the throttle."""
    lst = _Listener(sink, interval)
    token = _LISTENER.set(lst)
    try:
        yield
    finally:
        _LISTENER.reset(token)
        if lst.total or lst.done:
            sink(lst.done, lst.total)


def counts() -> tuple[int, int] | None:
    """(done, total) of the current listener, or None when nobody listens."""
    lst = _LISTENER.get()
    return None if lst is None else (lst.done, lst.total)
