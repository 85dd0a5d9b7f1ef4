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
        assert b.discounts[k].item() == (0.0 if terminated else np.float32(0.99))
    # the first transition of episode 2 must not see episode 1's frames: (0, 0, 11) -> (0, 11, 12)
    np.testing.assert_array_equal(b.obs[4].numpy(), stack(0, 0, 11))
    np.testing.assert_array_equal(b.next_obs[4].numpy(), stack(0, 11, 12))


def test_truncation_keeps_bootstrapping_and_termination_stops_it():
    buf = ReplayBuffer(50, (3, 2, 2), np.uint8, stack=3, rng=np.random.default_rng(0))
    play(buf, [([1, 2, 3], "trunc"), ([4, 5, 6], "term")])
    b = buf.batch(np.flatnonzero(buf.valid[: len(buf)]))
    assert b.discounts.tolist() == [np.float32(0.99)] * 3 + [0.0]
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


def test_continuous_actions_are_stored_as_float_vectors():
    buf = ReplayBuffer(10, (3,), np.float32, stack=1, rng=np.random.default_rng(0), action_shape=(2,))
    actions = [np.array([0.25 * t, -0.5], np.float32) for t in range(3)]
    for t in range(3):
        buf.add(np.full(3, t, np.float32), actions[t], 1.0, False, t == 2, np.full(3, t + 1, np.float32))
    b = buf.batch(np.array([0, 2]))
    assert b.actions.dtype == torch.float32 and b.actions.shape == (2, 2)
    np.testing.assert_array_equal(b.actions.numpy(), np.stack([actions[0], actions[2]]))
    obs, acts = buf.sample_states(50, np.random.default_rng(1))
    assert obs.shape == (50, 3) and acts.shape == (50, 2)
    np.testing.assert_array_equal(acts.numpy(), np.stack([actions[int(o[0])] for o in obs.numpy()]))


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
    assert per_transition == 84 * 84 + 4 + 4 + 4 + 1 + 2  # frame, action, return, discount, horizon, two flags
    assert per_transition * 1_000_000 <= 7.5e9


def test_empty_buffer_refuses_to_sample():
    buf = ReplayBuffer(10, (4,), np.float32, stack=1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        buf.sample(2)


def vec(t):
    return np.full(2, t, dtype=np.float32)


def run_episode(buf, rewards, end, life_lost_at=(), first_obs=0):
    """Observation t is vec(first_obs + t); ``end`` is "term", "trunc" or None (still running)."""
    for t, r in enumerate(rewards):
        last = t == len(rewards) - 1 and end is not None
        buf.add(vec(first_obs + t), t, r, (last and end == "term") or t in life_lost_at, last, vec(first_obs + t + 1))


def test_n_step_returns_by_hand_across_a_termination_and_a_truncation():
    buf = ReplayBuffer(50, (2,), np.float32, stack=1, rng=np.random.default_rng(0), n_step=3, gamma=0.5)
    run_episode(buf, [1.0, 2.0, 3.0, 4.0, 5.0], "term")  # slots 0-4, final frame in slot 5
    run_episode(buf, [1.0, 1.0], "trunc", first_obs=10)  # slots 6-7, final frame in slot 8
    idx = np.array([0, 1, 2, 3, 4, 6, 7])
    b = buf.batch(idx)
    # 1 + .5*2 + .25*3; 2 + .5*3 + .25*4; 3 + .5*4 + .25*5; 4 + .5*5; 5; then 1 + .5*1; 1
    assert b.returns.tolist() == [2.75, 4.5, 6.25, 6.5, 5.0, 1.5, 1.0]
    # γ^3 while the window is full; 0 once it reaches the termination; γ^k after a truncation (still bootstraps)
    assert b.discounts.tolist() == [0.125, 0.125, 0.0, 0.0, 0.0, 0.25, 0.5]
    # the bootstrap state is the one k steps later, the final observation when the episode ended sooner
    assert b.next_obs[:, 0].tolist() == [3.0, 4.0, 5.0, 5.0, 5.0, 12.0, 12.0]
    assert buf.horizon[idx].tolist() == [3, 3, 3, 2, 1, 2, 1]
    assert not buf._sampleable(np.array([5, 8])).any()  # final-frame slots


def test_a_lost_life_stops_the_window_but_not_the_episode():
    buf = ReplayBuffer(50, (2,), np.float32, stack=1, rng=np.random.default_rng(0), n_step=3, gamma=0.5)
    run_episode(buf, [1.0, 1.0, 1.0, 1.0], "trunc", life_lost_at=(1,))
    b = buf.batch(np.arange(4))
    assert b.returns.tolist() == [1.5, 1.0, 1.5, 1.0]
    assert b.discounts.tolist() == [0.0, 0.0, 0.25, 0.5]
    assert b.next_obs[:, 0].tolist() == [2.0, 2.0, 4.0, 4.0]


def test_incomplete_n_step_windows_are_never_sampled():
    buf = ReplayBuffer(50, (2,), np.float32, stack=1, rng=np.random.default_rng(0), n_step=3, gamma=0.5)
    run_episode(buf, [1.0, 1.0, 1.0, 1.0], None)  # running: t0 complete with s3 written; t1 waits for s4's frame
    assert buf.horizon[:4].tolist() == [3, 3, 0, 0]
    assert set(buf.sample_indices(200).tolist()) == {0}


@pytest.mark.parametrize("n_step", [1, 3])
def test_n_step_stacks_match_the_env_after_wraparound(n_step):
    """With frame stacks and a buffer that wrapped several times, every sampled transition's next observation is
    the env's observation k steps later, its return the discounted sum of the k rewards, k = min(n, steps left)."""
    gamma = 0.9
    buf = ReplayBuffer(40, (3, 2, 2), np.uint8, stack=3, rng=np.random.default_rng(3), n_step=n_step, gamma=gamma)
    episodes = [([100 + 10 * e + t for t in range(4 + e % 5)], "term" if e % 2 else "trunc") for e in range(15)]
    played = play(buf, episodes)
    assert buf.full
    expected = {}
    start = 0
    for ids, end in episodes:
        steps = played[start:start + len(ids) - 1]
        for t, (obs, _, _) in enumerate(steps):
            k = min(n_step, len(steps) - t)
            ret = sum(gamma ** j * float(ids[t + j]) for j in range(k))
            terminal = end == "term" and t + k == len(steps)
            expected[int(obs[-1, 0, 0])] = (obs, steps[t + k - 1][1], ret, 0.0 if terminal else gamma ** k)
        start += len(ids) - 1
    for _ in range(20):
        b = buf.sample(64)
        for o, n, r, d in zip(b.obs.numpy(), b.next_obs.numpy(), b.returns.tolist(), b.discounts.tolist(),
                              strict=True):
            obs, nxt, ret, disc = expected[int(o[-1, 0, 0])]
            np.testing.assert_array_equal(o, obs)
            np.testing.assert_array_equal(n, nxt)
            assert r == pytest.approx(ret, rel=1e-6) and d == pytest.approx(disc, rel=1e-6)


def staged_and_plain(**kwargs):
    """Two buffers fed the same episodes with the same seeds, one staging its batches (as on CUDA), one not."""
    bufs = [ReplayBuffer(100, (3, 2, 2), np.uint8, stack=3, rng=np.random.default_rng(0), n_step=2, stage=stage,
                         **kwargs) for stage in (True, False)]
    for buf in bufs:
        play(buf, [([1, 2, 3, 4, 5, 6, 7], "term"), ([11, 12, 13], "trunc"), ([21, 22, 23, 24, 25], "term")])
    return bufs


@pytest.mark.parametrize("prioritized", [False, True])
def test_a_staged_batch_is_the_same_batch_in_one_copy(prioritized):
    """Every part, dtype and shape as the part-by-part batch; the staging buffer's two host halves are reused, so a
    batch kept across later samples must still hold its own values."""
    staged, plain = staged_and_plain(prioritized=prioritized)
    kept = [(staged.sample(8), plain.sample(8)) for _ in range(5)]
    for a, b in kept:
        for name in ("obs", "actions", "returns", "next_obs", "discounts", "weights"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), name
        assert np.array_equal(a.indices, b.indices)
    assert len(staged._staging) == 1 and not plain._staging
    states = [buf.sample_states(16, np.random.default_rng(3)) for buf in (staged, plain)]
    assert all(torch.equal(x, y) for x, y in zip(*states, strict=True))


def test_staging_parts_start_aligned():
    from agents.staging import layout

    offsets, total = layout({"a": ((3,), np.uint8), "b": ((2,), np.int64), "c": ((5,), np.bool_),
                             "d": ((1,), np.float32)})
    assert offsets == {"a": (0, 3), "b": (8, 16), "c": (24, 5), "d": (32, 4)} and total == 40


@pytest.mark.cuda
def test_on_cuda_a_batch_staged_in_one_copy_equals_the_cpu_batch():
    """The pinned two-buffer path on a real GPU (CUDA's default): equal to the CPU's batch, also when kept."""
    bufs = [ReplayBuffer(100, (3, 2, 2), np.uint8, stack=3, rng=np.random.default_rng(0), n_step=2, device=device,
                         prioritized=True) for device in ("cuda", "cpu")]
    for buf in bufs:
        play(buf, [([1, 2, 3, 4, 5, 6, 7], "term"), ([11, 12, 13], "trunc"), ([21, 22, 23, 24, 25], "term")])
    assert bufs[0].stage and not bufs[1].stage
    kept = [(bufs[0].sample(8), bufs[1].sample(8)) for _ in range(5)]
    torch.cuda.synchronize()
    for a, b in kept:
        for name in ("obs", "actions", "returns", "next_obs", "discounts", "weights"):
            assert getattr(a, name).is_cuda and torch.equal(getattr(a, name).cpu(), getattr(b, name)), name
