"""What pruning and the health probe cost: Atari Pong training time with ``sparsity=0.95`` against the same
run dense, and the probe's share of training time at the default interval.

    python benchmarks/pruning_overhead.py [--steps 4000] [--rounds 2]

Dense and sparse runs alternate (dense, sparse, dense, sparse, ...) so that drift on this noisy machine hits both;
each run's SPS is taken between its first and last update. With ``--steps 4000`` a run makes 1,000 updates, so
the pruning window [200, 800] holds two mask recomputations at the default frequency (1,000), more per update
than a full run has. The probe share is one probe's median time over ``health.every_updates`` updates' worth of
training time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from atari_sps import Clock, learner_step_ms
from timing import median_ms

import suite
import train
from core.callbacks import Callback
from pruning.health import HealthCallback


def run(steps: int, sparsity: float, overrides: list[str], parts: dict) -> tuple[float, float]:
    cfg = suite.compose([f"total_env_steps={1000 + steps}", "agent.learning_starts=1000",
                         "agent.replay_capacity=100000", f"eval.every_env_steps={10 ** 9}", "eval.episodes=1",
                         "env.max_episode_steps=2000", "agent.epsilon_decay_steps=1", "progress=false",
                         f"sparsity={sparsity}", *overrides])
    clock, probe = Clock(), {}

    class ProbeTimer(Callback):
        def on_train_end(self, trainer):
            health = next(c for c in trainer.callbacks if isinstance(c, HealthCallback))
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                health.measure(trainer)
                times.append(time.perf_counter() - t0)
            probe["s"] = statistics.median(times)
            probe["every"] = cfg.health.every_updates
            pruner = trainer.callbacks[0].pruner
            if pruner.masks is not None:
                parts["learn_ms"] = learner_step_ms(trainer.agent, trainer.replay, n=30)
                parts["apply_ms"] = median_ms(pruner.apply, 50)
                parts["prune_to_ms"] = median_ms(lambda: pruner.prune_to(sparsity), 5)

    with tempfile.TemporaryDirectory() as d:
        summary = train.train(cfg, Path(d), callbacks=[clock, ProbeTimer()])
    assert abs(summary["sparsity"] - sparsity) < 1e-3, summary["sparsity"]
    return clock.sps, probe["s"] / (probe["every"] * 4 / clock.sps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sparsity", type=float, default=0.95)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    dense, sparse, shares, parts = [], [], [], {}
    for r in range(args.rounds):
        sps, share = run(args.steps, 0.0, args.overrides, parts)
        dense.append(sps)
        shares.append(share)
        sps, share = run(args.steps, args.sparsity, args.overrides, parts)
        sparse.append(sps)
        shares.append(share)
        print(f"round {r}: dense {dense[-1]:.1f} SPS, sparsity {args.sparsity} {sparse[-1]:.1f} SPS", flush=True)
    ratio = statistics.mean(dense) / statistics.mean(sparse)
    cycle_ms = 4e3 / statistics.mean(dense)  # training time per update (4 agent steps)
    mask_updates_per_update = (0.6 * 2_500_000 / 1000 + 1) / 2_500_000
    extra_ms = parts["apply_ms"] + parts["prune_to_ms"] * mask_updates_per_update
    print(f"training time, sparsity {args.sparsity} / dense   {ratio:.3f}   whole runs (goal <= 1.03)")
    print(f"  learner step {parts['learn_ms']:.1f} ms; per update: mask re-apply {parts['apply_ms']:.3f} ms; "
          f"mask recompute {parts['prune_to_ms']:.1f} ms every 1,000 updates in the window")
    print(f"  from the parts: 1 + {extra_ms:.3f} ms / {cycle_ms:.1f} ms per update = {1 + extra_ms / cycle_ms:.4f}")
    print(f"health probe share of training time             {100 * statistics.median(shares):.2f}%   "
          "at the default health.every_updates (goal <= 1%)")


if __name__ == "__main__":
    main()
