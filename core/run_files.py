"""The files of a run folder that the loop writes and the analysis reads, and how a run ended."""

from __future__ import annotations

import json
from pathlib import Path

CONFIG, SUMMARY, FAILED, INIT = "config.yaml", "summary.json", "failed.json", "init.pt"  # init: networks as built


def is_complete(run_dir: Path) -> bool:
    try:
        json.loads((run_dir / SUMMARY).read_text())
        return True
    except (OSError, ValueError):
        return False


def failure(run_dir: Path) -> str | None:
    """The last line of the error a job of ``run_dir`` failed with (a traceback's is the exception), or None."""
    try:
        return json.loads((run_dir / FAILED).read_text())["error"].strip().splitlines()[-1]
    except (OSError, ValueError, KeyError, IndexError):
        return None


def status(run_dir: Path) -> str:
    if is_complete(run_dir):
        return "complete"
    return "failed" if failure(run_dir) is not None else "unfinished"


def run_dirs(sweep_dir: Path) -> list[Path]:
    """Every job folder under ``sweep_dir``: one with Hydra's ``.hydra/``, the suite's ``config.yaml`` or a failure
    note (a job can fail before it writes its config)."""
    found = {p.parent.parent for p in sweep_dir.rglob(f".hydra/{CONFIG}")}
    found |= {p.parent for name in (CONFIG, FAILED) for p in sweep_dir.rglob(name) if p.parent.name != ".hydra"}
    return sorted(found)
