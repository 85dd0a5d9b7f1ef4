"""How a network's final sparsity is spread over its layers: uniform, or Erdős–Rényi-Kernel (Evci et al. 2020,
RigL), ported from JaxPruner's ``sparsity_distributions.py`` (``uniform``, ``get_sparsities_erdos_renyi`` with
kernel dims included, power 1), and how a layer's sparsity becomes a count of kept weights
(``mask_calculator.topk_mask_calculator``)."""

from __future__ import annotations

import math


def uniform_sparsities(shapes: dict[str, tuple[int, ...]], sparsity: float) -> dict[str, float]:
    return {name: sparsity for name in shapes}


def erk_sparsities(shapes: dict[str, tuple[int, ...]], sparsity: float) -> dict[str, float]:
    """Layer l keeps a fraction eps·sum(shape_l)/prod(shape_l) of its weights, with eps chosen so that the kept
    weights add up to Σ_l (n_l − ⌊s·n_l⌋). A layer whose fraction would exceed 1 is made dense (sparsity 0) and eps
    is solved again over the rest, as JaxPruner does (same operations in the same order, in float64)."""
    dense: set[str] = set()
    while True:
        divisor, rhs, raw = 0.0, 0, {}
        for name, shape in shapes.items():
            n = math.prod(shape)
            n_zeros = math.floor(sparsity * n)
            if name in dense:
                rhs -= n_zeros
            else:
                rhs += n - n_zeros
                raw[name] = sum(shape) / n
                divisor += raw[name] * n
        if not raw:
            return {name: 0.0 for name in shapes}
        eps = rhs / divisor
        max_raw = max(raw.values())
        if max_raw * eps <= 1:
            return {name: 0.0 if name in dense else 1.0 - eps * raw[name] for name in shapes}
        dense.update(name for name, r in raw.items() if r == max_raw)


def keep_count(n: int, sparsity: float) -> int:
    """Weights a layer of ``n`` keeps at ``sparsity``: all of them at 0, else round(n·(1 − s)) (half to even) and at
    least one, as JaxPruner's top-k mask."""
    return n if sparsity == 0 else max(1, round(n * (1.0 - sparsity)))
