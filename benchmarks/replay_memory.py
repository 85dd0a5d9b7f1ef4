"""Replay memory for Atari: bytes per transition and the resident memory of a filled buffer.

    python benchmarks/replay_memory.py                 # fills 1M transitions (about 7 GB of RAM)
    python benchmarks/replay_memory.py --capacity 100000   # and extrapolates to 1M

Frames come from a pool of real Pong observations, so the buffer holds realistic bytes; the resident set size
is read from the OS before and after filling, so pages that numpy has not touched are not counted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import psutil

from agents.replay import ReplayBuffer
from envs import make_env
from envs.atari import AtariConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--episode-steps", type=int, default=2_000, help="episode length used while filling")
    args = parser.parse_args()

    env = make_env(AtariConfig(id="Pong"), seed=0)
    obs, _ = env.reset(seed=0)
    pool = [obs]
    for _ in range(255):
        obs, *_ = env.step(env.action_space.sample())
        pool.append(obs)
    env.close()

    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    buf = ReplayBuffer(args.capacity, (4, 84, 84), np.uint8, stack=4, rng=np.random.default_rng(0))
    t0 = time.perf_counter()
    n = 0
    while not buf.full:
        end = (n + 1) % args.episode_steps == 0
        buf.add(pool[n % 256], n % 6, 1.0, end, end, pool[(n + 1) % 256])
        n += 1
    fill_s = time.perf_counter() - t0
    rss = proc.memory_info().rss - rss0

    t0 = time.perf_counter()
    for _ in range(200):
        buf.sample(32)
    sample_ms = (time.perf_counter() - t0) / 200 * 1e3

    per_transition = buf.nbytes / buf.capacity
    scale = 1_000_000 / args.capacity
    print(f"capacity                     {args.capacity:,} slots ({n:,} transitions added in {fill_s:.1f} s)")
    print(f"bytes per transition         {per_transition:,.0f} (allocated arrays / capacity)")
    print(f"resident memory, filled      {rss / 1e9:.3f} GB")
    print(f"resident memory at 1M        {rss * scale / 1e9:.3f} GB" + ("" if scale == 1 else " (extrapolated)"))
    print("limit                        7.5 GB")
    print(f"sample(32) at this capacity  {sample_ms:.3f} ms")


if __name__ == "__main__":
    main()
