"""SIGTERM and SIGHUP stop a run the way Ctrl-C (SIGINT) does.

Batch schedulers and `timeout` send SIGTERM; a closed terminal sends SIGHUP. Without a handler
of ours, Ray's C++ core takes SIGTERM: the driver aborts on the spot, engines are not shut down
and Ray's processes are left to notice on their own. With `stop_on_signals`, each of the three
raises `Stopped` in the main thread, so the run unwinds as for Ctrl-C: the stage stops, the
job's engines are released and waited for (`synthmix.pipeline.llm.engine_pool.job_engines`), committed
work stays committed, and the CLI then shuts Ray down before it exits with 128 + the signal.
A second signal while that happens is said and ignored: a cleanup cut short is what leaves
processes behind.
"""

from __future__ import annotations

import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The run was asked to stop by `signum`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_stopping = threading.Event()


def stop_on_signals() -> None:
    """Route SIGINT, SIGTERM and SIGHUP to `Stopped` (main thread only, where Python runs handlers)."""
    _stopping.clear()
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)


def _stop(signum: int, frame) -> None:
    if _stopping.is_set():
        print(f"synthmix: {signal.Signals(signum).name} again: already stopping (releasing engines, shutting Ray down)", file=sys.stderr, flush=True)
        return
    _stopping.set()
    raise Stopped(signum)


def stop_signal(interrupt: KeyboardInterrupt) -> int:
    """The signal behind an interrupt (SIGINT for a plain KeyboardInterrupt)."""
    _stopping.set()  # from here on the process is stopping, whatever raised the interrupt
    return interrupt.signum if isinstance(interrupt, Stopped) else signal.SIGINT
