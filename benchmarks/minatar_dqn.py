"""Wall time of MinAtar DQN runs at widths 1, 3 and 5 on this machine, and what the preset sweeps cost.

Runs ``train.py agent=dqn env=minatar`` (the shipped defaults: an update every 4 steps, one torch thread) for
``--steps`` agent steps at each width, twice in alternation, takes the median wall time per agent step (setup
excluded: the summary's ``wall_time_s`` is the loop's), and extrapolates to 1M-step runs and to
``+sweep=scaling_law_minatar`` (5 games x 2 sparsities x 5 seeds per width, 5M steps each by default).

``python benchmarks/minatar_dqn.py [--steps 50000] [--game breakout]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = (1, 3, 5)


def one_run(width: int, steps: int, game: str, folder: Path) -> float:
    run_dir = folder / f"w{width}_{len(list(folder.iterdir()))}"
    subprocess.run([sys.executable, str(ROOT / "train.py"), "agent=dqn", "env=minatar", f"env.id={game}",
                    f"network.width={width}", f"total_env_steps={steps}", f"eval.every_env_steps={steps}",
                    "checkpoint.replay=false", "progress=false", f"hydra.run.dir={run_dir}"],
                   check=True, capture_output=True)
    return json.loads((run_dir / "summary.json").read_text())["wall_time_s"] / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--game", default="breakout")
    args = parser.parse_args()
    per_step: dict[int, list[float]] = {w: [] for w in WIDTHS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):
            for width in WIDTHS:
                per_step[width].append(one_run(width, args.steps, args.game, Path(tmp)))
    print(f"MinAtar {args.game}, DQN defaults, {args.steps:,} agent steps per run, 2 runs per width in alternation")
    print("width | s per 1k steps (runs) | steps/s | 1M-step run | scaling_law_minatar at 5M steps (50 runs/width)")
    total = 0.0
    for width in WIDTHS:
        med = statistics.median(per_step[width])
        runs = ", ".join(f"{1000 * t:.2f}" for t in per_step[width])
        sweep_h = 50 * 5_000_000 * med / 3600
        total += sweep_h
        print(f"{width:5d} | {1000 * med:.2f} ({runs}) | {1 / med:,.0f} | {1e6 * med / 60:.1f} min | "
              f"{sweep_h:,.0f} core-hours")
    print(f"full preset sweep (150 runs, one core each): {total:,.0f} core-hours; "
          f"at 1M steps per run: {total / 5:,.0f} core-hours")


if __name__ == "__main__":
    main()
