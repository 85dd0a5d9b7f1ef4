"""dm_control tasks as the suite builds them (Shimmy + Gymnasium wrappers), checked against dm_control itself."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs import make_env
from envs.classic import ClassicConfig
from envs.dmc import DMCConfig, _import_suite


def rollout(env, seed, steps, actions):
    obs = [env.reset(seed=seed)[0]]
    for t in range(steps):
        obs.append(env.step(actions[t])[0])
    return np.stack(obs)


@pytest.mark.parametrize("task", ["cartpole-swingup", "walker-walk"])
def test_spaces_and_check_env(task):
    env = make_env(DMCConfig(id=task), seed=0)
    assert env.observation_space.dtype == np.float32 and env.observation_space.shape == \
        {"cartpole-swingup": (5,), "walker-walk": (24,)}[task]
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    check_env(env, skip_render_check=True)  # no OpenGL here; state observations only


def test_flattening_follows_the_observation_spec_order():
    """Same seed, same actions: the suite's flat observation is dm_control's dict concatenated in key order
    (Gymnasium's ``Dict`` space sorts its keys), not in the spec's order."""
    suite = _import_suite()
    raw = suite.load("walker", "walk", task_kwargs={"random": np.random.RandomState(3)})
    env = make_env(DMCConfig(id="walker-walk"), seed=0)
    env.reset(seed=3)
    actions = np.random.default_rng(0).uniform(-1, 1, (20, 6))
    ts = raw.reset()
    assert list(ts.observation) == ["orientations", "height", "velocity"]
    for a in actions:
        ts = raw.step(a)
        obs = env.step(a)[0]
        expected = np.concatenate([np.asarray(ts.observation[k], np.float64).ravel() for k in sorted(ts.observation)])
        np.testing.assert_array_equal(obs, expected.astype(np.float32))
        assert float(env.unwrapped._env.physics.data.time) == pytest.approx(float(raw.physics.data.time))


@pytest.mark.parametrize("repeat", [1, 4])
def test_the_time_limit_is_a_truncation_and_action_repeat_sums_rewards(repeat):
    env = make_env(DMCConfig(id="cartpole-swingup", action_repeat=repeat), seed=0)
    ref = make_env(DMCConfig(id="cartpole-swingup"), seed=0)
    env.reset(seed=1), ref.reset(seed=1)
    steps, total, ref_total = 0, 0.0, 0.0
    while True:
        obs, reward, terminated, truncated, info = env.step(np.array([0.3]))
        for _ in range(repeat):
            ref_obs, ref_reward = ref.step(np.array([0.3]))[:2]
            ref_total += ref_reward
        total += reward
        steps += 1
        assert reward == pytest.approx(ref_total - (total - reward))
        assert not terminated
        if truncated:
            break
    assert steps == 1000 // repeat
    np.testing.assert_array_equal(obs, ref_obs)
    assert info["episode"]["l"] == steps and info["episode"]["r"] == pytest.approx(total)
    assert total == pytest.approx(ref_total)


def test_seeding_is_reproducible():
    actions = np.random.default_rng(1).uniform(-1, 1, (50, 1))
    a, b, c = (make_env(DMCConfig(), seed=0) for _ in range(3))
    first, again, other = rollout(a, 7, 50, actions), rollout(b, 7, 50, actions), rollout(c, 8, 50, actions)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # later resets continue the seeded generator: the second episode starts elsewhere, the same way each time
    second_a, second_b = a.reset()[0], b.reset()[0]
    np.testing.assert_array_equal(second_a, second_b)
    assert not np.array_equal(second_a, first[0])


def test_pendulum_actions_are_rescaled_to_unit_range():
    env = make_env(ClassicConfig(id="Pendulum-v1"), seed=0)
    assert env.action_space.low.tolist() == [-1.0] and env.action_space.high.tolist() == [1.0]
    env.reset(seed=0)
    env.step(np.array([1.0], np.float32))
    assert env.unwrapped.last_u == pytest.approx(2.0)  # Pendulum's full torque
