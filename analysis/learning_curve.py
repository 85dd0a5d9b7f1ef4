"""Evaluation return against agent steps for one or more run folders:
``python -m analysis.learning_curve runs/a runs/b --out curve.png [--title ...] [--reference 800]``.

Reads ``eval/episodic_return`` (and its std over the evaluation episodes) from each run's ``metrics.jsonl`` (or the
``metrics.jsonl.gz`` of a packed run, ``analysis/pack.py``);
writes the figure (any extension matplotlib knows: .png, .pdf, .svg).
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import TextIO


def open_metrics(run_dir: Path) -> TextIO:
    """The run's ``metrics.jsonl``, or the ``metrics.jsonl.gz`` of a packed run (``analysis/pack.py``)."""
    raw, packed = run_dir / "metrics.jsonl", run_dir / "metrics.jsonl.gz"
    return open(raw) if raw.is_file() or not packed.is_file() else gzip.open(packed, "rt")


def eval_curve(run_dir: Path) -> tuple[list[int], list[float], list[float]]:
    """(steps, mean returns, stds) of every evaluation the run logged, in order."""
    steps, means, stds = [], [], []
    with open_metrics(run_dir) as f:
        for line in f:
            if '"eval/episodic_return"' not in line:  # most rows are losses: skip them without parsing
                continue
            row = json.loads(line)
            if "eval/episodic_return" in row:
                steps.append(row["step"])
                means.append(row["eval/episodic_return"])
                stds.append(row.get("eval/episodic_return_std", 0.0))
    if not steps:
        raise SystemExit(f"error: {run_dir} has no evaluation in metrics.jsonl")
    return steps, means, stds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Plot evaluation return against agent steps.")
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="")
    parser.add_argument("--reference", type=float, help="a horizontal line, e.g. a published score")
    args = parser.parse_args(argv)

    import matplotlib  # heavy (about 0.5 s): only the command that draws pays for it, not eval_curve's readers

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the non-interactive backend

    fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
    for run in args.runs:
        steps, means, stds = eval_curve(run)
        line = ax.plot(steps, means, marker="o", ms=3, label=run.name)[0]
        ax.fill_between(steps, [m - s for m, s in zip(means, stds, strict=True)],
                        [m + s for m, s in zip(means, stds, strict=True)], color=line.get_color(), alpha=0.2)
    if args.reference is not None:
        ax.axhline(args.reference, color="gray", ls="--", lw=1, label=f"reference {args.reference:g}")
    ax.set_xlabel("agent steps")
    ax.set_ylabel("evaluation return (mean ± std over episodes)")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
