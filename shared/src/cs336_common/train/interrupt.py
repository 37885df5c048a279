"""Ctrl-C that lets the current training step finish.

A KeyboardInterrupt raised mid-step could leave the optimizer half updated; instead the
first SIGINT only sets a flag that the loop checks between steps (where it can save a
consistent checkpoint). A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Yield ``requested()``: whether Ctrl-C was pressed since entering. Outside the main
    thread (where Python cannot install signal handlers) it is always False."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    pressed = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()
        print("\nstopping after this step (Ctrl-C again to stop now)", flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
