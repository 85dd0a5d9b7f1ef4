"""What a run folder records about where it came from: the code, and the machine that ran it."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
RESULTS = "results/"  # run folders of committed studies: new ones are untracked while their runs go


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True).stdout


def uncommitted_files() -> list[str] | None:
    """Paths whose content differs from the commit: tracked changes anywhere, and untracked files outside
    ``results/`` (a new config or module is code the run would use). None outside a git checkout."""
    try:
        lines = _git("status", "--porcelain", "--untracked-files=all").splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    paths = [(line[:2], line[3:].split(" -> ")[-1].strip('"')) for line in lines if line.strip()]
    return [path for state, path in paths if not (state == "??" and path.startswith(RESULTS))]


def code_version() -> dict[str, str | bool]:
    """The git commit of the code that ran (and whether the tree had uncommitted changes, as
    ``uncommitted_files``), else the package version, so that a number in a paper can be traced to the code that
    produced it."""
    try:
        commit = _git("rev-parse", "HEAD").strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    changed = uncommitted_files()
    if commit and changed is not None:
        return {"git_commit": commit, "git_dirty": bool(changed)}
    try:
        return {"package_version": metadata.version("pedrl")}
    except metadata.PackageNotFoundError:
        return {"package_version": "unknown"}


def cpu_model() -> str:
    """The processor's name (``/proc/cpuinfo``'s model name on Linux): float rounding differs between processors,
    so the same seed and config can diverge on another one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, str]:
    """Where a run ran: enough to tell whether two runs of one seed could have agreed digit for digit."""
    out = {"platform": platform.platform(), "processor": cpu_model(), "python": sys.version.split()[0],
           "torch": torch.__version__}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    return out


def version_record() -> dict:
    """``version.json``: the code version and the machine."""
    return {**code_version(), "machine": machine()}


def check_clean_tree(required: bool) -> None:
    """A run meant for ``results/`` (``require_clean_tree``, set by the study presets) starts only from committed
    code, so that its ``version.json`` names code anyone can check out."""
    if not required:
        return
    changed = uncommitted_files()
    if changed is None:
        raise ConfigError("require_clean_tree", True, "this is not a git checkout, so the code of the run could not "
                          "be named; run it from a clone, or give require_clean_tree=false for an experiment")
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise ConfigError("require_clean_tree", True, f"the tree has uncommitted changes ({shown}); commit them, "
                          "or give require_clean_tree=false for an experiment whose files are not for results/")
