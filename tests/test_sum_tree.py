"""The prioritized-replay sum tree against brute force and by sampling statistics."""

import numpy as np
import pytest

from agents.sum_tree import SumTree


def test_every_inner_node_is_the_sum_of_its_children_after_batched_updates():
    rng = np.random.default_rng(0)
    tree = SumTree(1000)  # padded to 1,024 leaves
    for _ in range(50):
        idx = rng.integers(0, 1000, size=32)
        tree.set(idx, rng.random(32) * 10)
    inner = np.arange(1, tree.leaf0)
    assert np.allclose(tree.nodes[inner], tree.nodes[2 * inner] + tree.nodes[2 * inner + 1])
    assert tree.total == pytest.approx(tree.get(np.arange(1000)).sum())


def test_a_repeated_index_keeps_its_last_priority_and_max_priority_tracks():
    tree = SumTree(8)
    tree.set([3, 5, 3], [1.0, 2.0, 7.0])
    assert tree.get([3, 5]).tolist() == [7.0, 2.0] and tree.total == 9.0 and tree.max_priority == 7.0
    tree.set([3], [0.5])
    assert tree.total == 2.5 and tree.max_priority == 7.0
    with pytest.raises(ValueError, match=">= 0"):
        tree.set([1], [-1.0])


def test_find_by_hand():
    """Priorities [1, 2, 3, 0, 4]: prefix intervals [0,1) [1,3) [3,6) (empty) [6,10)."""
    tree = SumTree(5)
    tree.set(np.arange(5), [1.0, 2.0, 3.0, 0.0, 4.0])
    masses = [0.0, 0.99, 1.0, 2.5, 3.0, 5.99, 6.0, 9.99]
    assert tree.find(masses).tolist() == [0, 0, 1, 1, 2, 2, 4, 4]


def test_sampling_frequencies_match_priorities_and_zero_is_never_drawn():
    tree = SumTree(6)
    priorities = np.array([1.0, 2.0, 3.0, 0.0, 4.0, 0.5])
    tree.set(np.arange(6), priorities)
    rng = np.random.default_rng(1)
    draws = np.concatenate([tree.stratified_sample(32, rng) for _ in range(5000)])  # 160,000 draws
    freq = np.bincount(draws, minlength=6) / draws.size
    expected = priorities / priorities.sum()
    assert freq[3] == 0.0
    # binomial standard error at n = 160k is at most 0.00125; allow 4 of them
    assert np.abs(freq - expected).max() < 0.005, (freq, expected)


def test_updates_change_what_is_sampled():
    tree = SumTree(4)
    tree.set(np.arange(4), [1.0, 1.0, 1.0, 1.0])
    tree.set([0, 1, 2], [0.0, 0.0, 0.0])
    assert set(tree.stratified_sample(64, np.random.default_rng(0)).tolist()) == {3}


def test_state_round_trip_rebuilds_the_tree():
    rng = np.random.default_rng(2)
    a = SumTree(100)
    a.set(rng.integers(0, 100, 64), rng.random(64))
    b = SumTree(100)
    b.load_state_dict(a.state_dict(), a.get(np.arange(100)))
    assert np.allclose(a.nodes, b.nodes) and b.max_priority == a.max_priority
    assert a.stratified_sample(32, np.random.default_rng(3)).tolist() == \
        b.stratified_sample(32, np.random.default_rng(3)).tolist()


def test_the_top_edge_of_the_mass_never_reaches_a_zero_leaf():
    tree = SumTree(4)
    tree.set(np.arange(4), [1.0, 1.0, 0.0, 0.0])
    assert tree.find([2.0]).tolist() == [1]  # the whole right half is empty: stay left
