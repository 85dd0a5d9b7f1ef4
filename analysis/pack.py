"""Pack a study's finished runs for the repository: ``python -m analysis.pack results/minatar_dqn_1m``.

A finished run's light files are what the repository keeps of it (``results/.gitignore`` leaves out checkpoints,
event files and the raw log); this writes each complete run's ``metrics.jsonl.gz`` (gzip, no timestamp, so packing
twice gives the same bytes) and prints the complete run folders, to ``git add``. ``plot.py`` and the learning
curves read ``metrics.jsonl.gz`` where ``metrics.jsonl`` is absent. Unfinished runs are left alone: nothing of them
is committed, and the study's command runs them again.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from core.run_files import is_complete, run_dirs


def pack(run_dir: Path) -> Path:
    out = run_dir / "metrics.jsonl.gz"
    raw = run_dir / "metrics.jsonl"
    if raw.is_file() and not out.is_file():
        tmp = out.with_name(f".{out.name}.tmp")
        with open(raw, "rb") as src, open(tmp, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
            gz.write(src.read())
        tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    args = parser.parse_args(argv)
    for run_dir in run_dirs(args.study):
        if is_complete(run_dir):
            pack(run_dir)
            print(run_dir)


if __name__ == "__main__":
    main()
