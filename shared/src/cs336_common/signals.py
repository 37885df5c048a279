"""SIGTERM unwinds like Ctrl-C.

Slurm, Kubernetes and `kill` stop a job with SIGTERM, whose default action ends the
process at once: ``finally`` blocks never run, so temporary files stay behind and child
processes are orphaned. Under `terminate_as_interrupt` SIGTERM raises `Interrupted`, a
KeyboardInterrupt, so the command unwinds exactly as on Ctrl-C and the CLI runner exits
with the shell's code for death by that signal (143).

A process forked meanwhile (a `multiprocessing` pool worker) inherits the handler: a
worker that its parent ends with SIGTERM (``Pool.terminate``) should reset SIGTERM to
``SIG_DFL`` in its initializer. Processes started fresh (spawn, subprocess) do not inherit it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Interrupted(KeyboardInterrupt):
    """Stopped by a signal; ``exit_code`` is the shell's convention for death by that
    signal (128 + signum: 130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises `Interrupted` (in the main thread; elsewhere Python
    cannot install handlers and nothing changes). The previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)
