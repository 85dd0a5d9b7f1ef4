"""Replay stores each frame once and rebuilds stacks exactly as the env stacks them when acting."""

import numpy as np
import pytest
import torch

from agents.replay import ReplayBuffer


def frame(v):
    return np.full((2, 2), v, dtype=np.uint8)


def stack(*values):
    """An env observation: 3 frames, oldest first; 0 stands for the zero padding at reset."""
    return np.stack([frame(v) for v in values])


def play(buf, episodes):
    """Feed episodes of frame ids through ``add`` the way the loop does, with a 3-frame zero-padded stack.

    Each episode is (frame ids, how it ends: "term" or "trunc"). Returns every transition as
    (obs, next_obs, terminated) in env terms, for comparison with what replay rebuilds."""
    out = []
    for ids, end in episodes:
        hist = [0, 0, ids[0]]
        for t in range(len(ids) - 1):
            obs = stack(*hist[-3:])
            hist.append(ids[t + 1])
            nxt = stack(*hist[-3:])
            last = t == len(ids) - 2
            terminated = last and end == "term"
            buf.add(obs, action=t % 3, reward=float(ids[t]), terminated=terminated, episode_end=last, next_obs=nxt)
            out.append((obs, nxt, terminated))
    return out


def test_stacks_are_rebuilt_exactly_across_episode_boundaries():
    buf = ReplayBuffer(100, (3, 2, 2), np.uint8, stack=3, rng=np.random.default_rng(0))
    episodes = [([1, 2, 3, 4, 5], "term"), ([11, 12], "trunc"), ([21, 22, 23, 24], "term"), ([31, 32, 33], "term")]
    expected = play(buf, episodes)
    idx = np.flatnonzero(buf.valid[: len(buf)])
    assert len(idx) == len(expected) == 4 + 1 + 3 + 2
    b = buf.batch(idx)
    for k, (obs, nxt, terminated) in enumerate(expected):
        np.testing.assert_array_equal(b.obs[k].numpy(), obs)
        np.testing.assert_array_equal(b.next_obs[k].numpy(), nxt)
        assert b.terminated[k].item() == float(terminated)
    # the first transition of episode 2 must not see episode 1's frames: (0, 0, 11) -> (0, 11, 12)
    np.testing.assert_array_equal(b.obs[4].numpy(), stack(0, 0, 11))
    np.testing.assert_array_equal(b.next_obs[4].numpy(), stack(0, 11, 12))


def test_truncation_keeps_bootstrapping_and_termination_stops_it():
    buf = ReplayBuffer(50, (3, 2, 2), np.uint8, stack=3, rng=np.random.default_rng(0))
    play(buf, [([1, 2, 3], "trunc"), ([4, 5, 6], "term")])
    b = buf.batch(np.flatnonzero(buf.valid[: len(buf)]))
    assert b.terminated.tolist() == [0.0, 0.0, 0.0, 1.0]
    np.testing.assert_array_equal(b.next_obs[1].numpy(), stack(1, 2, 3))  # final obs of a truncated episode kept


def test_sampling_never_returns_unfinished_or_boundary_slots_after_wraparound():
    buf = ReplayBuffer(16, (3, 2, 2), np.uint8, stack=3, rng=np.random.default_rng(1))
    episodes = [([100 + 10 * e + t for t in range(6)], "term") for e in range(5)]
    expected = {int(o[-1, 0, 0]): (o, n) for o, n, _ in play(buf, episodes)}
    assert buf.full
    # an unfinished episode: its newest transition has no next frame yet
    buf.add(stack(0, 0, 7), 0, 0.0, False, False, stack(0, 7, 8))
    for _ in range(50):
        b = buf.sample(64)
        for o, n in zip(b.obs.numpy(), b.next_obs.numpy(), strict=True):
            key = int(o[-1, 0, 0])
            assert key != 7
            np.testing.assert_array_equal(o, expected[key][0])
            np.testing.assert_array_equal(n, expected[key][1])


def test_vector_observations_without_stacking():
    buf = ReplayBuffer(10, (4,), np.float32, stack=1, rng=np.random.default_rng(0))
    obs = [np.arange(4, dtype=np.float32) + 10 * t for t in range(4)]
    for t in range(3):
        buf.add(obs[t], 1, 1.0, t == 2, t == 2, obs[t + 1])
    b = buf.batch(np.array([0, 2]))
    np.testing.assert_array_equal(b.obs.numpy(), np.stack([obs[0], obs[2]]))
    np.testing.assert_array_equal(b.next_obs.numpy(), np.stack([obs[1], obs[3]]))
    assert b.obs.dtype == torch.float32 and b.actions.dtype == torch.int64


def test_sampling_is_uniform_over_transitions():
    buf = ReplayBuffer(1000, (3, 2, 2), np.uint8, stack=3, rng=np.random.default_rng(2))
    play(buf, [([1 + t + 10 * e for t in range(10)], "term") for e in range(20)])
    counts = np.bincount(buf.sample_indices(90_000), minlength=len(buf))
    valid = buf.valid[: len(buf)]
    assert counts[~valid].sum() == 0
    expected = 90_000 / valid.sum()
    assert np.all(np.abs(counts[valid] - expected) < 5 * np.sqrt(expected))


def test_atari_frames_stored_once():
    buf = ReplayBuffer(1000, (4, 84, 84), np.uint8, stack=4, rng=np.random.default_rng(0))
    per_transition = buf.nbytes / buf.capacity
    assert per_transition == 84 * 84 + 4 + 4 + 3  # one frame, action, reward, three flags
    assert per_transition * 1_000_000 <= 7.5e9


def test_empty_buffer_refuses_to_sample():
    buf = ReplayBuffer(10, (4,), np.float32, stack=1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        buf.sample(2)
