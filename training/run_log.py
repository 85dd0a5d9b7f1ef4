"""The run's log: every line the run prints to the terminal, stdout and stderr, also appended to ``train.log`` in its
folder, so that a run started in the background or by a scheduler can be read afterwards.

Hydra already opens ``train.log`` (its ``job_logging``) but the suite prints rather than logs, so it stayed empty.
Lines are written as a terminal would leave them: text after a carriage return replaces the line, so the progress
bar's redraws leave only its last state, and the file holds what the screen held.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

LOG = "train.log"


class _Tee:
    """A text stream that writes through to ``stream`` and appends each finished line to ``log``, time-stamped."""

    def __init__(self, stream: IO[str], log: IO[str], tag: str):
        self.stream, self.log, self.tag = stream, log, tag
        self._line = ""

    def write(self, text: str) -> int:
        n = self.stream.write(text)
        for i, part in enumerate(text.split("\n")):
            if i:
                self._finish()
            self._line = self._line + part if "\r" not in part else part.rsplit("\r", 1)[1]
        return n

    def _finish(self) -> None:
        if self._line.strip():
            self.log.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {self.tag}{self._line.rstrip()}\n")
            self.log.flush()
        self._line = ""

    def flush(self) -> None:
        self.stream.flush()

    def close_line(self) -> None:
        self._finish()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the terminal's
        return getattr(self.stream, name)


@contextmanager
def run_log(run_dir: Path) -> Iterator[Callable[[str], None]]:
    """While inside, ``sys.stdout`` and ``sys.stderr`` also append to ``run_dir/train.log`` (stderr's lines marked
    ``stderr:``). Appends: a resumed run's lines follow the first start's. Yields a function that writes to the log
    alone (a crash's traceback, which Hydra prints to the terminal itself)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOG, "a", encoding="utf-8") as log:
        out, err = _Tee(sys.stdout, log, ""), _Tee(sys.stderr, log, "stderr: ")
        sys.stdout, sys.stderr = out, err

        def note(text: str) -> None:
            log.write(text if text.endswith("\n") else text + "\n")
            log.flush()

        try:
            yield note
        finally:
            sys.stdout, sys.stderr = out.stream, err.stream
            out.close_line()
            err.close_line()
