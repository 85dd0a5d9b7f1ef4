"""Wall time of each comparison method against GMP, side by side, on MinAtar DQN.

Runs ``train.py agent=dqn env=minatar`` for ``--steps`` agent steps once per method and round, the methods in
alternation (``--rounds`` rounds), and prints each method's median loop time (``summary.json``'s ``wall_time_s``,
setup excluded) and its ratio to GMP's at 95% sparsity. The methods run at their defaults (SET/RigL: a mask update
every 1,000 updates; ReDo every 1,000; the reset at ``--reset-every``, below the default 100,000 so that a short run
has some), so the ratio is what a run pays; the extra events per run are printed beside it.

``python benchmarks/methods_overhead.py [--steps 50000] [--rounds 2] [--width 1] [--game breakout]``
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
METHODS = {
    "gmp": ["sparsity=0.95"],
    "dense": ["sparsity=0"],
    "dense+redo": ["sparsity=0", "redo.enabled=true"],
    "dense+reset": ["sparsity=0", "reset.enabled=true"],
    "dense+wd": ["sparsity=0", "agent.weight_decay=1e-5"],
    "static": ["pruning=static", "sparsity=0.95"],
    "set": ["pruning=set", "sparsity=0.95"],
    "rigl": ["pruning=rigl", "sparsity=0.95"],
}


def one_run(args, name: str, folder: Path) -> tuple[float, int]:
    run_dir = folder / f"{name}_{len(list(folder.iterdir()))}"
    subprocess.run([sys.executable, str(ROOT / "train.py"), "agent=dqn", "env=minatar", f"env.id={args.game}",
                    f"network.width={args.width}", f"total_env_steps={args.steps}",
                    f"eval.every_env_steps={args.steps}", "checkpoint.replay=false", "progress=false",
                    f"reset.every_updates={args.reset_every}", *METHODS[name], f"hydra.run.dir={run_dir}"],
                   check=True, capture_output=True)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    events = sum(1 for r in rows if any(k.startswith(("sparse/drop", "redo/", "reset/")) for k in r))
    return json.loads((run_dir / "summary.json").read_text())["wall_time_s"], events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--width", type=float, default=1)
    parser.add_argument("--game", default="breakout")
    parser.add_argument("--reset-every", type=int, default=2_000)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in METHODS}
    events: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name in METHODS:
                seconds, events[name] = one_run(args, name, Path(tmp))
                times[name].append(seconds)
    gmp = statistics.median(times["gmp"])
    print(f"MinAtar {args.game} DQN, width {args.width:g}, {args.steps:,} agent steps, median of {args.rounds} runs")
    print(f"{'method':<12} {'loop s':>8} {'x GMP':>7} {'events':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<12} {median:8.2f} {median / gmp:7.3f} {events[name]:7d}")


if __name__ == "__main__":
    main()
