"""Each method against dense at the same width, and how that gap changes with width (``analysis.significance``).

For every configuration that is not dense: its IQM minus the IQM of the plain dense configuration of the same agent,
network and width (with its stratified-bootstrap CI and the stratified permutation test's p-value), and, at a width
above the smallest, the interaction: that difference minus the same method's difference at the smallest width.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.significance import difference_ci, interaction_ci, permutation_test

COLUMNS = ["agent", "network", "width", "sparsity", "method", "diff", "diff_ci_low", "diff_ci_high", "p_value",
           "interaction", "interaction_ci_low", "interaction_ci_high", "interaction_from_width", "runs", "dense_runs"]


def against_dense(matrices: dict[str, np.ndarray], info: dict[str, dict], reps: int, seed: int = 0) -> pd.DataFrame:
    """A row per non-dense configuration that has a dense one to compare with (over the same games)."""
    by_key = {(i["agent"], i["network"], i["width"], i["sparsity"], i["method"]): name for name, i in info.items()}
    dense = {(a, n, w): name for (a, n, w, s, m), name in by_key.items() if m == "dense"}
    rows = []
    for (agent, network, width, sparsity, method), name in sorted(by_key.items()):
        base = dense.get((agent, network, width))
        if method == "dense" or base is None or matrices[name].shape[1] != matrices[base].shape[1]:
            continue
        diff, low, high = difference_ci(matrices[name], matrices[base], reps, seed)
        _, p = permutation_test(matrices[name], matrices[base], reps, seed)
        row = dict(agent=agent, network=network, width=width, sparsity=sparsity, method=method, diff=diff,
                   diff_ci_low=low, diff_ci_high=high, p_value=p, runs=matrices[name].size,
                   dense_runs=matrices[base].size)
        narrow = min((w for (a, n, w, s, m) in by_key if (a, n, s, m) == (agent, network, sparsity, method)),
                     default=width)
        narrow_name, narrow_base = by_key.get((agent, network, narrow, sparsity, method)), dense.get(
            (agent, network, narrow))
        if narrow < width and narrow_base is not None:
            point, ilow, ihigh = interaction_ci(matrices[name], matrices[base], matrices[narrow_name],
                                                matrices[narrow_base], reps, seed)
            row.update(interaction=point, interaction_ci_low=ilow, interaction_ci_high=ihigh,
                       interaction_from_width=narrow)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
