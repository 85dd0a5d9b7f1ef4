"""What a sweep holds before it launches: its runs, those already complete in its folder (which it skips), and about
how many core-hours the rest take, in one line.

The jobs are listed as Hydra's basic sweeper makes them (the preset's ``hydra.sweeper.params``, then the command
line's swept keys). Composing each job's config to cost it would take seconds per hundred jobs, so a job's cost is
the cost of the command's first config times, for each swept key, the ratio its value makes alone (from the one
config per value that the preflight composes anyway): exact where the keys act on separate factors (steps, width,
agent), close elsewhere, and well inside the cost model's own error (``training/cost.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from hydra._internal.config_loader_impl import get_overrides_dirname  # hydra-core 1.3.8 (pinned): a job's folder
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from core.run_files import is_complete
from training.cost import ROUGH

JOB_SUBDIR = "${hydra.job.override_dirname}"  # conf/config.yaml's hydra.sweep.subdir, the one named from overrides


def _key_value(override: str) -> tuple[str, str]:
    key, _, value = override.lstrip("+~").partition("=")
    return key, value


def sweep_jobs(params: dict, overrides: Sequence[str]) -> list[list[str]]:
    """Each job's overrides, as the basic sweeper makes them: the preset's params first, the command line after (a
    key given both ways takes the command line's values), one job per combination."""
    parsed = OverridesParser.create().parse_overrides([*(f"{k}={v}" for k, v in params.items()), *overrides])
    return BasicSweeper.split_arguments(parsed, None)[0]


def job_folder(sweep_dir: str, subdir: str, job: list[str], exclude_keys: list[str]) -> Path | None:
    """The folder Hydra gives ``job``, when the sweep names its jobs by their overrides (the suite's default)."""
    if subdir != JOB_SUBDIR:
        return None
    parsed = OverridesParser.create().parse_overrides(job)
    return Path(sweep_dir) / get_overrides_dirname(parsed, exclude_keys, item_sep=",", kv_sep="=")


def job_seconds(job: list[str], base: float | None, by_value: dict[tuple[str, str], float | None]) -> float | None:
    """``base`` times, for each of the job's values that has a config of its own in ``by_value``, its ratio to base."""
    if base is None:
        return None
    ratios = [by_value[kv] / base if by_value[kv] is not None else math.nan
              for kv in map(_key_value, job) if kv in by_value]
    total = base * math.prod(ratios)
    return None if math.isnan(total) else total


def plan_line(jobs: list[list[str]], folders: list[Path | None], base: float | None,
              by_value: dict[tuple[str, str], float | None], sweep_dir: str, parallel: int) -> str:
    """``sweep: N runs[, K of them complete in <dir> (skipped)], about H core-hours ...``: what the command is about
    to start."""
    todo = [job for job, folder in zip(jobs, folders, strict=True) if folder is None or not is_complete(folder)]
    done = len(jobs) - len(todo)
    head = f"sweep: {len(jobs)} run{'s' if len(jobs) > 1 else ''}"
    if done:
        head += f", {done} of them complete in {sweep_dir} (skipped)" + (f": {len(todo)} to train" if todo else "")
    if not todo:
        return f"{head}: nothing to train"
    seconds = [job_seconds(job, base, by_value) for job in todo]
    if any(s is None for s in seconds):
        return f"{head}; no cost estimate: some of its settings have no measured per-step cost (training/cost.py)"
    total = sum(seconds)
    wall = f", about {_time(total / parallel)} with {parallel} jobs at a time" if parallel > 1 else ""
    return f"{head}, about {_time(total, 'core-')} on a CPU{wall} ({ROUGH})"


def _time(seconds: float, core: str = "") -> str:
    """``515 core-hours``, ``2.5 core-hours``, ``12 core-minutes``."""
    hours = seconds / 3600
    if hours >= 1:
        return f"{hours:,.0f} {core}hours" if hours >= 100 else f"{hours:.1f} {core}hours"
    minutes = max(round(seconds / 60), 1)
    return f"{minutes} {core}minute{'s' if minutes > 1 else ''}"
