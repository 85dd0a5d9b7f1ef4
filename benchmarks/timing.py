"""Timing helper shared by the benchmarks."""

from __future__ import annotations

import statistics
import time

import torch


def median_ms(fn, repeats: int, warmup: int = 0) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def wait(device: torch.device | str) -> None:
    """Block until ``device`` has run every queued kernel, so a GPU's asynchronous work is timed where it happens."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
