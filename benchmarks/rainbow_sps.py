"""Rainbow's training SPS on Atari Pong next to DQN's, alternating in one process so both see the same machine.

    python benchmarks/rainbow_sps.py [--pairs 2] [--steps 3000] [extra overrides for both, e.g. network=impala]

Both agents use their defaults (Rainbow: compact, C51 + 3-step + prioritized replay) and act at ε = 0.01. Prints
each run's SPS and bare learner step, and the Rainbow / DQN ratios per pair.
"""

from __future__ import annotations

import argparse

from atari_sps import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3000, help="agent steps after learning starts")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    for pair in range(args.pairs):
        runs = {agent: measure(args.steps, args.learning_starts, [f"agent={agent}", *args.overrides])
                for agent in ("dqn", "rainbow")}
        for agent, m in runs.items():
            print(f"pair {pair}  {agent:8s} SPS {m['sps']:6.1f}   learner step {m['before']:.1f} / {m['after']:.1f} ms")
        d, r = runs["dqn"], runs["rainbow"]
        print(f"pair {pair}  rainbow / dqn: SPS {r['sps'] / d['sps']:.3f}, learner step "
              f"{(r['before'] + r['after']) / (d['before'] + d['after']):.3f}")


if __name__ == "__main__":
    main()
