"""Prioritized replay at 1M Atari transitions: what a Rainbow update adds over DQN's uniform sampling, next to
the learner step, measured in the same run.

    python benchmarks/prioritized_replay.py [--capacity 1000000]

Fills a real 3-step prioritized buffer through ``add`` (episodes of 2,000 steps, 84x84 frames), then times per
batch of 32: a uniform sample (DQN's path: indices + stack gather), a prioritized sample (stratified sum-tree
walk + importance weights + the same gather), writing 32 priorities back, and a compact-Rainbow learner step on
the Nature CNN. Also prints the buffer's resident size.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import psutil
import torch
from timing import median_ms

from agents.networks import NatureCNNConfig
from agents.rainbow import Rainbow, RainbowConfig
from agents.replay import ReplayBuffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capacity", type=int, default=1_000_000)
    args = parser.parse_args()
    rss0 = psutil.Process().memory_info().rss
    buf = ReplayBuffer(args.capacity, (4, 84, 84), np.uint8, stack=4, rng=np.random.default_rng(0), n_step=3,
                       prioritized=True)
    obs = np.random.default_rng(1).integers(0, 255, (4, 84, 84), dtype=np.uint8)
    t0 = time.perf_counter()
    for t in range(args.capacity):
        end = t % 2000 == 1999
        buf.add(obs, t % 6, 1.0, False, end, obs)
    fill = time.perf_counter() - t0
    rss = psutil.Process().memory_info().rss - rss0
    print(f"filled {args.capacity:,} transitions in {fill:.0f} s ({fill / args.capacity * 1e6:.1f} us per add); "
          f"buffer {buf.nbytes / 1e9:.3f} GB, resident +{rss / 1e9:.3f} GB")

    rng = np.random.default_rng(2)
    uniform = median_ms(lambda: buf.batch(buf.sample_indices(32, rng)), 300, warmup=20)
    prioritized = median_ms(lambda: buf.sample(32), 300, warmup=20)
    batch = buf.sample(32)
    priorities = torch.rand(32, dtype=torch.float64) * 2
    write_back = median_ms(lambda: buf.update_priorities(batch.indices, priorities), 300, warmup=20)
    agent = Rainbow(RainbowConfig(), NatureCNNConfig(), (4, 84, 84), 6, np.random.default_rng(0), torch.device("cpu"))
    learn = median_ms(lambda: agent.update(batch).priorities, 30, warmup=5)
    extra = prioritized + write_back - uniform
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; per batch of 32 at {args.capacity:,}:")
    print(f"  uniform sample (DQN)               {uniform:.3f} ms")
    print(f"  prioritized sample                 {prioritized:.3f} ms")
    print(f"  priority write-back                {write_back:.3f} ms")
    print(f"  Rainbow learner step (Nature CNN)  {learn:.1f} ms")
    print(f"  prioritized over uniform: +{extra:.3f} ms per update = {extra / learn:.2%} of the learner step")


if __name__ == "__main__":
    main()
