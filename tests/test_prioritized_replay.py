"""Prioritized replay with Dopamine's rules: max priority for new items, the agent's priorities (Rainbow:
sqrt(loss + 1e-10), tested in test_rainbow.py), weights 1/sqrt(P)."""

import numpy as np
import pytest
import torch

from agents.replay import ReplayBuffer


def filled(n_transitions=6, capacity=50, seed=0, n_step=1):
    buf = ReplayBuffer(capacity, (2,), np.float32, stack=1, rng=np.random.default_rng(seed), n_step=n_step,
                       gamma=0.5, prioritized=True)
    for t in range(n_transitions):
        last = t == n_transitions - 1
        buf.add(np.full(2, t, np.float32), 0, 1.0, last, last, np.full(2, t + 1, np.float32))
    return buf


def test_new_transitions_get_the_max_priority_and_updates_set_the_agents_priorities():
    buf = filled(4)  # slots 0-3, final frame in slot 4
    assert buf.tree.get(np.arange(5)).tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]
    buf.update_priorities(np.array([0, 1, 2]), torch.tensor([3.0, 1e-5, 4.0]))  # Rainbow's for losses 9, 0, 16
    assert buf.tree.get(np.arange(4)).tolist() == pytest.approx([3.0, 1e-5, 4.0, 1.0])
    assert buf.tree.max_priority == pytest.approx(4.0)
    buf.add(np.zeros(2, np.float32), 0, 0.0, True, True, np.ones(2, np.float32))  # slot 5; final frame slot 6
    assert buf.tree.get(np.array([5, 6])).tolist() == pytest.approx([4.0, 0.0])


def test_importance_weights_by_hand():
    """Priorities 1 and 4: P = 0.2, 0.8; w = 1/sqrt(P) = 2.236, 1.118; divided by the batch max: 1, 0.5."""
    buf = filled(2)
    buf.update_priorities(np.array([0, 1]), torch.tensor([1.0, 4.0], dtype=torch.float64))
    b = buf.sample(64)
    assert set(b.indices.tolist()) == {0, 1}
    expected = np.where(b.indices == 0, 1.0, 0.5)
    np.testing.assert_allclose(b.weights.numpy(), expected, rtol=1e-6)


def test_sampling_frequencies_match_priorities():
    buf = filled(6)
    priorities = np.array([1.0, 2.0, 3.0, 0.5, 4.0, 1.5])
    buf.update_priorities(np.arange(6), torch.tensor(priorities, dtype=torch.float64))
    draws = np.concatenate([buf.sample(32).indices for _ in range(5000)])  # 160,000 draws, seed 0
    freq = np.bincount(draws, minlength=7) / draws.size
    assert freq[6] == 0.0  # the final-frame slot
    # binomial standard error at n = 160k is at most 0.00125; allow 4 of them
    np.testing.assert_allclose(freq[:6], priorities / priorities.sum(), atol=0.005)


def test_priority_updates_change_what_is_sampled():
    buf = filled(6)
    buf.update_priorities(np.arange(5), torch.full((5,), 1e-5))  # Rainbow's priority for a zero loss
    counts = np.bincount(np.concatenate([buf.sample(32).indices for _ in range(100)]), minlength=6)
    # 1e-5 against 1: about 0.03 of 3,200 draws land on the five lowered slots
    assert counts[5] >= 3190


def test_overwritten_and_incomplete_slots_hold_no_priority():
    buf = filled(20, capacity=12, n_step=3)  # wrapped; the episode ends at transition 19
    leaves = buf.tree.get(np.arange(12))
    assert (leaves[~buf.valid] == 0).all() and (leaves[buf.valid] == 1.0).all()
    buf.add(np.zeros(2, np.float32), 0, 0.0, False, False, np.ones(2, np.float32))  # window still open
    assert buf.tree.get(np.array([(buf.cursor - 1) % 12]))[0] == 0.0
    assert buf.tree.total == pytest.approx(float(buf.tree.get(np.arange(12)).sum()))


def test_checkpoint_round_trip_keeps_priorities_and_pending_windows():
    a = filled(6, n_step=3)
    a.update_priorities(np.arange(3), torch.tensor([2.0, 3.0, 1.0]))
    a.add(np.zeros(2, np.float32), 1, 2.0, False, False, np.ones(2, np.float32))
    b = ReplayBuffer(50, (2,), np.float32, stack=1, rng=np.random.default_rng(9), n_step=3, gamma=0.5,
                     prioritized=True)
    b.load_state_dict(a.state_dict(), {k: v.copy() for k, v in a.arrays().items()})
    for buf in (a, b):
        buf.add(np.ones(2, np.float32), 0, 1.0, False, False, np.ones(2, np.float32))
        buf.add(np.ones(2, np.float32), 0, 1.0, True, True, np.ones(2, np.float32))
    np.testing.assert_array_equal(a.tree.nodes, b.tree.nodes)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert a.tree.max_priority == b.tree.max_priority == pytest.approx(3.0)
    np.testing.assert_array_equal(a.sample(16).indices, b.sample(16).indices)
