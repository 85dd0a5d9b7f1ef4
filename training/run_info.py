"""What a run folder records about where it came from."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def code_version() -> dict[str, str | bool]:
    """The git commit of the code that ran (and whether the tree had uncommitted changes), else the package
    version, so that a number in a paper can be traced to the code that produced it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return {"git_commit": commit, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        try:
            return {"package_version": metadata.version("pedrl")}
        except metadata.PackageNotFoundError:
            return {"package_version": "unknown"}
