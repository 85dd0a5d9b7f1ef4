"""Sweeps on Hydra's launchers: a failed job leaves a note in its run folder instead of stopping the sweep, and the
sweep ends with one report of what is complete, failed or unfinished.

Every launcher (basic, joblib, submitit, ray) runs each job through the same ``train.py`` entry point, so the note
is written where the job ran. Re-running the sweep command skips complete runs (``summary.json``), resumes
unfinished ones from their last checkpoint and retries failed ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from core.run_files import FAILED, SUMMARY, failure, run_dirs, status
from training.run_folder import write_atomic


def mark_failed(run_dir: Path, error: str, exit_code: int) -> None:
    write_atomic(run_dir / FAILED, json.dumps({"error": error, "exit_code": exit_code}, indent=2) + "\n")


def clear_failed(run_dir: Path) -> None:
    (run_dir / FAILED).unlink(missing_ok=True)


class SweepReport(Callback):
    """Prints how each run of the sweep folder ended and exits 1 if any did not complete."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        by_status: dict[str, list[Path]] = {"complete": [], "failed": [], "unfinished": []}
        for run_dir in run_dirs(sweep_dir):
            by_status[status(run_dir)].append(run_dir)
        counts = ", ".join(f"{len(v)} {k}" for k, v in by_status.items())
        print(f"sweep {sweep_dir}: {counts}", flush=True)
        for run_dir in by_status["failed"]:
            print(f"  failed: {run_dir.relative_to(sweep_dir)}: {failure(run_dir)}")
        for run_dir in by_status["unfinished"]:
            print(f"  unfinished: {run_dir.relative_to(sweep_dir)} (no {SUMMARY}; re-run the sweep to resume it)")
        if by_status["failed"] or by_status["unfinished"]:
            print("re-run the same command to retry them; complete runs are skipped", flush=True)
            sys.exit(1)
