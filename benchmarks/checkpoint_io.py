"""Checkpoint write and load time, and size, for an Atari replay buffer filled to N transitions.

    python benchmarks/checkpoint_io.py --transitions 250000

Writes into a temporary folder on the disk that holds ``--dir`` (default: the system's temp folder). The time to
stop on SIGTERM is one agent step plus this write.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from agents.replay import ReplayBuffer
from training.checkpoint import Checkpointer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--transitions", type=int, default=250_000)
    p.add_argument("--dir", default=None)
    args = p.parse_args()
    n = args.transitions
    rng = np.random.default_rng(0)
    replay = ReplayBuffer(n, (4, 84, 84), np.uint8, 4, rng)
    replay.frames[:] = rng.integers(0, 256, size=replay.frames.shape, dtype=np.uint8)
    replay.valid[:], replay.cursor, replay.full = True, 0, True
    state = {"replay": replay.state_dict(), "weights": {f"w{i}": torch.randn(1_000_000) for i in range(4)}}
    arrays = {f"replay.{k}": v for k, v in replay.arrays().items()}
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        ckpt = Checkpointer(Path(d), keep=1)
        t0 = time.perf_counter()
        tmp, nbytes = ckpt.begin(n, state, arrays)
        t1 = time.perf_counter()
        ckpt.commit(tmp, n, {"metrics": 0, "tb": {}})
        t2 = time.perf_counter()
        _, _, loaded, _ = ckpt.load_latest()
        replay.load_state_dict(state["replay"], {k.removeprefix("replay."): v for k, v in loaded.items()})
        del loaded
        t3 = time.perf_counter()
    gb = nbytes / 1e9
    print(f"transitions {n:,}: checkpoint {gb:.2f} GB | write {t1 - t0:.1f} s + manifest/fsync/rename {t2 - t1:.1f} s "
          f"= {t2 - t0:.1f} s ({gb / (t2 - t0):.2f} GB/s) | verified load into the buffer {t3 - t2:.1f} s")
    print(f"extrapolated to 1M transitions: write {(t2 - t0) * 1e6 / n:.0f} s, load {(t3 - t2) * 1e6 / n:.0f} s")


if __name__ == "__main__":
    main()
