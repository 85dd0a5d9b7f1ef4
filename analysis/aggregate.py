"""Aggregate scores per configuration with rliable (Agarwal et al. 2021): the interquartile mean of the normalised
scores over runs and games, and its 95% stratified bootstrap confidence interval (resampling runs within each
game). A configuration is (agent, network, width, sparsity, method); its score matrix is seeds × games.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics

CONFIG_KEYS = ["agent", "network", "width", "sparsity", "method"]


def label(agent: str, network: str, width: float, sparsity: float, method: str) -> str:
    """The method is named where the sparsity does not say it (dense at 0, GMP above), so that a plain GMP sweep keeps
    its labels."""
    named = "" if method == ("dense" if sparsity == 0 else "gmp") else f" {method}"
    return f"{agent} {network} width={width:g} sparsity={sparsity:g}{named}"


def score_matrices(runs: pd.DataFrame, column: str = "normalized"
                   ) -> tuple[dict[str, np.ndarray], dict[str, dict], list[str]]:
    """Per configuration: the (seeds × games) matrix of normalised scores (``column``), facts about it, and what was
    left out.

    rliable needs a full matrix, so a configuration uses the seeds that are complete on every one of its games; a
    run of another seed is left out and listed."""
    matrices, info, left_out = {}, {}, []
    done = runs[runs[column].notna()]
    for key, rows in done.groupby(CONFIG_KEYS):
        table = rows.pivot_table(index="seed", columns="game", values=column, aggfunc="first")
        full = table.dropna()
        for seed in table.index.difference(full.index):
            missing = ", ".join(table.columns[table.loc[seed].isna()])
            left_out.append(f"{label(*key)} seed={seed}: left out, no complete run on {missing}")
        if full.empty:
            continue
        name = label(*key)
        matrices[name] = full.to_numpy()
        info[name] = dict(zip(CONFIG_KEYS, key, strict=True), runs=full.size, seeds=len(full),
                          games=full.shape[1])
    return matrices, info, left_out


def iqm(matrix: np.ndarray) -> np.ndarray:
    return np.array([metrics.aggregate_iqm(matrix)])


@contextmanager
def numpy_seed(seed: int) -> Iterator[None]:
    """rliable 1.2.0 draws its bootstrap indices from NumPy's global generator (``np.random.choice``) and never uses
    the ``random_state`` it accepts, so a reproducible bootstrap seeds the global generator, restored afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def aggregate(matrices: dict[str, np.ndarray], info: dict[str, dict], reps: int = 50_000,
              seed: int = 0) -> pd.DataFrame:
    """One row per configuration: IQM, CI low and high (95%, stratified bootstrap), and the runs and games used."""
    with numpy_seed(seed):
        points, intervals = rly.get_interval_estimates(matrices, iqm, reps=reps)
    rows = [{**info[name], "iqm": points[name][0], "ci_low": intervals[name][0, 0], "ci_high": intervals[name][1, 0]}
            for name in matrices]
    columns = [*CONFIG_KEYS, "iqm", "ci_low", "ci_high", "runs", "seeds", "games"]
    return pd.DataFrame(rows, columns=columns).sort_values(CONFIG_KEYS, ignore_index=True)
