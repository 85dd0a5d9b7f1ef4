"""Score normalisation and aggregation, against hand values and rliable itself (pure logic on small tables; the
real sweeps that feed them are in test_sweeps.py)."""

import numpy as np
import pandas as pd
import pytest
from rliable import library as rly
from rliable import metrics

from analysis.aggregate import aggregate, score_matrices
from analysis.normalize import human_normalized, normalize, reference_table


def test_human_normalised_scores_match_dqn_zoos_table_by_hand():
    # Pong: random -20.7, human 14.6; Breakout: random 1.7, human 30.5 (DQN Zoo atari_data.py)
    assert human_normalized("Pong", 0.0) == pytest.approx(20.7 / 35.3)
    assert human_normalized("Pong", 14.6) == pytest.approx(1.0)
    assert human_normalized("Breakout", [1.7, 16.1]) == pytest.approx([0.0, 0.5])
    assert len(reference_table("atari_human_random.csv")) == 57
    with pytest.raises(ValueError, match="no human score for Atari game 'Minecraft'"):
        human_normalized("Minecraft", 1.0)


def runs_table(rows):
    return pd.DataFrame(rows, columns=["env", "agent", "network", "game", "width", "sparsity", "seed", "score"])


def test_minatar_scores_are_normalised_by_random_and_the_sweeps_dense_smallest_width():
    random = reference_table("minatar_random.csv").random
    runs = runs_table([
        ("minatar", "dqn", "minatar_cnn", "breakout", 1.0, 0.0, 0, 10.0),
        ("minatar", "dqn", "minatar_cnn", "breakout", 1.0, 0.0, 1, 14.0),  # baseline: mean 12
        ("minatar", "dqn", "minatar_cnn", "breakout", 3.0, 0.0, 0, 20.0),  # wider dense: not the baseline
        ("minatar", "dqn", "minatar_cnn", "breakout", 3.0, 0.95, 0, 30.0),
        ("minatar", "dqn", "minatar_cnn", "freeway", 1.0, 0.0, 0, 0.5),  # baseline barely above random: floor 1
        ("minatar", "dqn", "minatar_cnn", "freeway", 3.0, 0.95, 0, 2.0),
    ])
    n = normalize(runs)
    b = random["breakout"]
    assert n[:4].tolist() == pytest.approx([(s - b) / (12 - b) for s in (10, 14, 20, 30)])
    assert n[4:].tolist() == pytest.approx([0.5 - random["freeway"], 2.0 - random["freeway"]])
    with pytest.raises(ValueError, match="dqn on freeway has no complete dense"):
        normalize(runs[~((runs.game == "freeway") & (runs.sparsity == 0))])


def test_iqm_and_cis_are_rliables_on_the_same_matrix():
    rows = [("atari", "dqn", "impala", game, 1.0, 0.0, seed, 0.0) for seed in range(4) for game in ("A", "B")]
    runs = runs_table(rows)
    runs["normalized"] = np.arange(1, 9, dtype=float)  # seeds x games = [[1, 2], [3, 4], [5, 6], [7, 8]]
    matrices, info, left_out = score_matrices(runs)
    (name, matrix), = matrices.items()
    assert matrix.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]] and left_out == []
    summary = aggregate(matrices, info, reps=2000, seed=3)
    assert summary.iqm[0] == pytest.approx(4.5)  # the mean of the middle half, 3..6, by hand
    np.random.seed(3)  # rliable 1.2.0 resamples from NumPy's global generator, ignoring random_state
    point, ci = rly.get_interval_estimates({name: matrix}, lambda m: np.array([metrics.aggregate_iqm(m)]), reps=2000)
    assert summary.iqm[0] == point[name][0]
    assert (summary.ci_low[0], summary.ci_high[0]) == (ci[name][0, 0], ci[name][1, 0])
    assert summary.ci_low[0] < 4.5 < summary.ci_high[0]
    assert (summary.runs[0], summary.seeds[0], summary.games[0]) == (8, 4, 2)


def test_a_seed_missing_on_one_game_is_left_out_and_listed():
    runs = runs_table([("atari", "dqn", "impala", g, 1.0, 0.0, s, 0.0) for s in range(3) for g in ("A", "B")])
    runs["normalized"] = 1.0
    runs.loc[(runs.seed == 2) & (runs.game == "B"), "normalized"] = np.nan
    matrices, info, left_out = score_matrices(runs)
    assert next(iter(matrices.values())).shape == (2, 2)
    assert left_out == ["dqn impala width=1 sparsity=0 seed=2: left out, no complete run on B"]


def test_the_bootstrap_is_reproducible_from_its_seed():
    """rliable ignores the random_state it is given; the seed must still fix the CIs (and leave NumPy's global
    generator as it was)."""
    matrices = {"c": np.random.default_rng(0).random((5, 3))}
    info = {"c": dict(agent="dqn", network="mlp", width=1.0, sparsity=0.0, runs=15, seeds=5, games=3)}
    before = np.random.get_state()[1].copy()
    a, b, c = (aggregate(matrices, info, reps=500, seed=s) for s in (7, 7, 8))
    assert a.equals(b) and not a.equals(c)
    assert (np.random.get_state()[1] == before).all()
