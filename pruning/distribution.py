"""How a total sparsity is spread over layers: uniform, or Erdős–Rényi-Kernel (Evci et al. 2020, RigL), as
JaxPruner's ``sparsity_distributions.py``. Results are exact keep counts, so the total hits its target."""

from __future__ import annotations

import math


def uniform_densities(shapes: dict[str, tuple[int, ...]], sparsity: float) -> dict[str, float]:
    return {name: 1.0 - sparsity for name in shapes}


def erk_densities(shapes: dict[str, tuple[int, ...]], sparsity: float) -> dict[str, float]:
    """Density of layer l ∝ sum(shape_l) / prod(shape_l) (kernel dims included), with one scale factor chosen so
    that the total number of kept weights is (1 − s)·N. A layer whose density would exceed 1 is made dense and the
    factor is solved again over the rest."""
    dense: set[str] = set()
    while True:
        rhs, divisor, raw = 0.0, 0.0, {}
        for name, shape in shapes.items():
            n = math.prod(shape)
            if name in dense:
                rhs -= n * sparsity  # a dense layer keeps its share of zeros elsewhere
            else:
                rhs += n * (1.0 - sparsity)
                raw[name] = sum(shape) / n
                divisor += raw[name] * n
        if not raw:
            return {name: 1.0 for name in shapes}
        eps = rhs / divisor
        max_raw = max(raw.values())
        if max_raw * eps <= 1.0:
            return {name: 1.0 if name in dense else eps * raw[name] for name in shapes}
        dense.update(name for name, r in raw.items() if r == max_raw)


def keep_counts(shapes: dict[str, tuple[int, ...]], densities: dict[str, float], sparsity: float) -> dict[str, int]:
    """Integer weights to keep per layer: floors of density·n, then the remainder given to the largest fractional
    parts (ties to the first layer), so that the total kept is exactly round((1 − s)·N)."""
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    total_keep = round((1.0 - sparsity) * sum(sizes.values()))
    exact = {name: min(max(densities[name], 0.0), 1.0) * sizes[name] for name in shapes}
    counts = {name: math.floor(x) for name, x in exact.items()}
    order = sorted(shapes, key=lambda name: -(exact[name] - counts[name]))
    i, short = 0, total_keep - sum(counts.values())
    while short > 0 and i < 10 * len(order):
        name = order[i % len(order)]
        if counts[name] < sizes[name]:
            counts[name] += 1
            short -= 1
        i += 1
    return counts
