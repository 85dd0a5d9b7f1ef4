"""Is a method's lead over dense more than seed noise, and does it change with width?

- ``permutation_test``: a stratified permutation test of the IQM difference between two configurations. Under the
  null hypothesis the method label does not matter, so within each game the runs of both configurations are pooled
  and relabelled at random (keeping each side's count); labels never cross games, whose scales differ. Two-sided
  p-value with the +1 correction of Phipson & Smyth (2010), so a Monte Carlo p is never 0.
- ``interaction_ci``: the width × method interaction, (IQM(a) − IQM(b)) at one width minus the same at another, with
  a percentile CI from a stratified bootstrap (runs resampled with replacement within each game, independently per
  configuration), the resampling rliable uses for its IQM CIs (Agarwal et al. 2021).

Scores are matrices of runs × games, as ``analysis.aggregate.score_matrices`` makes them; the IQM is rliable's.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def iqm_rows(values: np.ndarray) -> np.ndarray:
    """The IQM of each row of a (resamples × scores) array: rliable's ``aggregate_iqm`` (a 25% trimmed mean)."""
    return stats.trim_mean(values, proportiontocut=0.25, axis=1)


def iqm(matrix: np.ndarray) -> float:
    return float(stats.trim_mean(np.asarray(matrix, dtype=float), proportiontocut=0.25, axis=None))


def permutation_test(a: np.ndarray, b: np.ndarray, reps: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """(IQM(a) − IQM(b), two-sided p-value) over ``reps`` relabellings within each game (column) of the
    runs × games matrices ``a`` and ``b``, which may hold different numbers of runs."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the two configurations cover {a.shape[1]} and {b.shape[1]} games; they must match")
    observed = iqm(a) - iqm(b)
    rng = np.random.default_rng(seed)
    na = a.shape[0]
    left, right = [], []
    for game in range(a.shape[1]):
        pooled = np.concatenate([a[:, game], b[:, game]])
        shuffled = rng.permuted(np.tile(pooled, (reps, 1)), axis=1)  # each row a relabelling of this game's runs
        left.append(shuffled[:, :na])
        right.append(shuffled[:, na:])
    null = iqm_rows(np.concatenate(left, axis=1)) - iqm_rows(np.concatenate(right, axis=1))
    extreme = np.abs(null) >= abs(observed) - 1e-12 * max(1.0, abs(observed))  # ties count, up to float rounding
    return observed, float((extreme.sum() + 1) / (reps + 1))


def p_text(p: float) -> str:
    """A p-value as a reader takes it: four decimals, or two significant digits below 0.0001 (never "0.0000")."""
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def bootstrap_iqms(matrix: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` IQMs of the matrix with its runs resampled with replacement within each game (stratified)."""
    matrix = np.asarray(matrix, dtype=float)
    runs, games = matrix.shape
    rows = rng.integers(0, runs, size=(reps, runs, games))
    return iqm_rows(matrix[rows, np.arange(games)].reshape(reps, -1))


def difference_ci(a: np.ndarray, b: np.ndarray, reps: int = 10_000, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float, float]:
    """IQM(a) − IQM(b) and its percentile CI from a stratified bootstrap of each configuration."""
    rng = np.random.default_rng(seed)
    diffs = bootstrap_iqms(a, reps, rng) - bootstrap_iqms(b, reps, rng)
    low, high = np.percentile(diffs, [50 * (1 - level), 50 * (1 + level)])
    return iqm(a) - iqm(b), float(low), float(high)


def interaction_ci(a_wide: np.ndarray, b_wide: np.ndarray, a_narrow: np.ndarray, b_narrow: np.ndarray,
                   reps: int = 10_000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """The difference of differences (IQM(a) − IQM(b) at the wider width) − (the same at the narrower one), and its
    percentile CI from a stratified bootstrap of all four configurations; a CI that excludes 0 says that the gap
    between the methods changes with width."""
    rng = np.random.default_rng(seed)
    boot = [bootstrap_iqms(m, reps, rng) for m in (a_wide, b_wide, a_narrow, b_narrow)]
    diffs = (boot[0] - boot[1]) - (boot[2] - boot[3])
    low, high = np.percentile(diffs, [50 * (1 - level), 50 * (1 + level)])
    point = (iqm(a_wide) - iqm(b_wide)) - (iqm(a_narrow) - iqm(b_narrow))
    return point, float(low), float(high)


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 and the half-width of its Student-t interval (0 for a single seed)."""
    n = values.shape[0]
    mean = values.mean(axis=0)
    if n < 2:
        return mean, np.zeros_like(mean)
    return mean, stats.t.ppf(0.5 + level / 2, n - 1) * values.std(axis=0, ddof=1) / np.sqrt(n)
