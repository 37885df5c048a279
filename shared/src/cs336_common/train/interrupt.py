"""Ctrl-C and SIGTERM that let the current training step finish.

A KeyboardInterrupt raised mid-step could leave the optimizer half updated; instead the
first SIGINT (Ctrl-C) or SIGTERM (what Slurm and Kubernetes send before killing a job)
only sets a flag that the loop checks between steps, where it can save a consistent
checkpoint and then raise `Interrupted`. A second signal interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from cs336_common.signals import Interrupted  # what the loop raises after checkpointing


class StopRequest:
    """Truthy call result once a signal arrived; ``signum`` says which (None before)."""

    def __init__(self):
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def deferred_interrupt(
    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[StopRequest]:
    """Yield a `StopRequest`: ``requested()`` tells whether one of ``signals`` arrived
    since entering. Outside the main thread (where Python cannot install signal
    handlers) it is always False. The previous handlers are restored on exit."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        if request.signum is not None:
            raise Interrupted(signum, "interrupted at once (second signal)")
        request.signum = signum
        again = "Ctrl-C" if signum == signal.SIGINT else "signal"
        print(
            f"\n{signal.Signals(signum).name}: stopping after this step ({again} again to stop now)",
            flush=True,
        )

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
