"""The significance tests against exact values: a permutation test enumerated by hand, a bootstrap that collapses to
its point when runs do not vary, and rliable's IQM as the reference statistic."""

import itertools

import numpy as np
import pytest
from rliable import metrics

from analysis.significance import difference_ci, interaction_ci, iqm, mean_ci, p_text, permutation_test


def exact_p(a, b, stratified=True):
    """Every relabelling, enumerated: within each game (column) when stratified, else across all runs."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    observed = abs(metrics.aggregate_iqm(a) - metrics.aggregate_iqm(b))
    if not stratified:
        pooled = np.concatenate([a.ravel(), b.ravel()])
        splits = [np.isin(np.arange(len(pooled)), c) for c in itertools.combinations(range(len(pooled)), a.size)]
        stats = [abs(metrics.aggregate_iqm(pooled[m]) - metrics.aggregate_iqm(pooled[~m])) for m in splits]
        return np.mean(np.array(stats) >= observed - 1e-12)
    per_game = []
    for g in range(a.shape[1]):
        pooled = np.concatenate([a[:, g], b[:, g]])
        per_game.append([(pooled[list(c)], np.delete(pooled, list(c)))
                         for c in itertools.combinations(range(len(pooled)), a.shape[0])])
    stats = [abs(metrics.aggregate_iqm(np.concatenate([x for x, _ in choice]))
                 - metrics.aggregate_iqm(np.concatenate([y for _, y in choice])))
             for choice in itertools.product(*per_game)]
    return np.mean(np.array(stats) >= observed - 1e-12)


def test_one_game_three_runs_each_has_the_exact_p_of_one_tenth():
    # 20 ways to choose 3 of 6 runs; only {1,2,3} and {4,5,6} reach |mean difference| = 3: p = 2/20
    diff, p = permutation_test([[1.0], [2.0], [3.0]], [[4.0], [5.0], [6.0]], reps=40_000, seed=1)
    assert diff == -3.0
    assert p == pytest.approx(0.1, abs=0.006)


def test_labels_are_permuted_within_each_game_not_across_games():
    """Game 2 scores ten times game 1; the stratified p (enumerated, 36 relabellings) differs from the pooled one, and
    the Monte Carlo test finds the stratified value."""
    a = [[1.0, 10.0], [3.0, 30.0]]
    b = [[2.0, 22.0], [4.0, 40.0]]
    stratified, pooled = exact_p(a, b), exact_p(a, b, stratified=False)
    assert stratified != pytest.approx(pooled, abs=0.05)
    diff, p = permutation_test(a, b, reps=40_000, seed=2)
    assert diff == pytest.approx(metrics.aggregate_iqm(np.array(a)) - metrics.aggregate_iqm(np.array(b)))
    assert p == pytest.approx(stratified, abs=0.01)


def test_a_p_value_is_never_zero_and_identical_groups_give_one():
    _, p = permutation_test([[0.0], [0.1], [0.2], [0.3]], [[10.0], [10.1], [10.2], [10.3]], reps=100, seed=0)
    assert p > 0  # the +1 correction: the observed labelling is one of the possible ones
    _, p = permutation_test([[1.0, 5.0], [2.0, 6.0]], [[1.0, 5.0], [2.0, 6.0]], reps=500, seed=0)
    assert p == 1.0
    with pytest.raises(ValueError, match="cover 2 and 1 games"):
        permutation_test([[1.0, 2.0]], [[1.0]])


def test_iqm_is_rliables_and_trims_a_quarter_from_each_end():
    m = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 100.0], [-50.0, 5.0]])
    assert iqm(m) == pytest.approx(metrics.aggregate_iqm(m))
    assert iqm(m) == pytest.approx(np.mean([1.0, 2.0, 3.0, 4.0]))  # 8 scores: the middle 4


def test_the_interaction_is_the_difference_of_differences_by_hand():
    """Runs that do not vary within a game: every bootstrap resample is the matrix itself, so the CI is the point.
    IQMs (6 scores, the middle 4): dense w1 1.5, GMP w1 1.0, dense w3 2.5, GMP w3 3.5 -> (3.5 - 2.5) - (1.0 - 1.5)."""
    d1, g1 = [[1.0, 2.0]] * 3, [[0.5, 1.5]] * 3
    d3, g3 = [[2.0, 3.0]] * 3, [[3.0, 4.0]] * 3
    assert interaction_ci(g3, d3, g1, d1, reps=200) == pytest.approx((1.5, 1.5, 1.5))
    assert difference_ci(g3, d3, reps=200) == pytest.approx((1.0, 1.0, 1.0))


def test_the_interaction_ci_covers_its_point_and_narrows_with_more_runs():
    rng = np.random.default_rng(0)
    few = [rng.normal(mu, 1.0, size=(3, 3)) for mu in (2.0, 1.0, 0.0, 0.5)]
    many = [rng.normal(mu, 1.0, size=(30, 3)) for mu in (2.0, 1.0, 0.0, 0.5)]
    point, low, high = interaction_ci(*few, reps=4000)
    assert low < point < high
    wide = high - low
    point, low, high = interaction_ci(*many, reps=4000)
    assert low < point < high and high - low < wide
    assert low < 1.5 < high  # the true (2 - 1) - (0 - 0.5)


def test_mean_ci_is_students_t_by_hand():
    values = np.array([[1.0], [2.0], [3.0]])  # mean 2, sd 1, t(0.975, 2) = 4.3027
    mean, half = mean_ci(values)
    assert mean[0] == 2.0 and half[0] == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)


def test_a_p_value_below_a_ten_thousandth_is_not_printed_as_zero():
    assert p_text(0.0123456) == "0.0123" and p_text(1 / 50_001) == "2.0e-05"
