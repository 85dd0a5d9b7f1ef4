"""Stop requests: turn SIGTERM, SIGUSR1 and Ctrl-C (SIGINT) into a request the loop answers with a checkpoint and a
clean exit.

Clusters warn a job before killing it (SLURM: ``--signal``, then SIGTERM on preemption, then SIGKILL after a grace
period); a user at a terminal presses Ctrl-C. The handler only sets a flag; the loop checks it after each agent
step and inside evaluations, so a stop takes at most one step plus the checkpoint write. A second Ctrl-C while that
is under way aborts at once (``Aborted``), without the checkpoint. Under submitit
(``hydra/launcher=submitit_slurm``) the job's process already has submitit's requeue handler on SIGUSR2 (or
``$SUBMITIT_PREEMPT_SIGNAL``); that signal is caught too, and after the checkpoint is written submitit's handler is
called, which requeues the job.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

OWN_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class Aborted(KeyboardInterrupt):
    """A second Ctrl-C: the run stops where it is, without writing a checkpoint."""

    def __init__(self) -> None:
        super().__init__("aborted by a second SIGINT; no checkpoint was written, the last one is intact: run the "
                         "same command again to resume from it")


def _submitit_signal() -> signal.Signals:
    return signal.Signals[f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}"]


class StopRequest:
    """Context manager installing the handlers (main thread only). ``signum`` is set once a signal arrived."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._chained: int | None = None
        self._depth = 0

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def __enter__(self) -> StopRequest:
        """Re-entrant: only the outermost ``with`` installs and restores the handlers."""
        self._depth += 1
        if self._depth > 1 or threading.current_thread() is not threading.main_thread():
            return self
        chained = _submitit_signal()
        wanted = list(OWN_SIGNALS)
        if callable(signal.getsignal(chained)):
            self._chained = chained
            if chained not in wanted:
                wanted.append(chained)
        for s in wanted:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            for s, previous in self._previous.items():
                signal.signal(s, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signum is not None:
            raise Aborted
        # the first signal wins, except submitit's requeue signal: SLURM may send SIGTERM first on preemption,
        # and only the requeue signal's handler resubmits the job
        if self.signum is None or signum == self._chained:
            self.signum = signum

    def pass_on(self) -> None:
        """Call the handler that was installed before ours for the received signal (submitit's requeue), if any; a
        Ctrl-C has been answered in full by the checkpoint."""
        if self.signum == signal.SIGINT:
            return
        previous = self._previous.get(self.signum)
        if callable(previous) and previous is not signal.default_int_handler:
            previous(self.signum, None)
