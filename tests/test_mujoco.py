"""Gymnasium's MuJoCo tasks as the suite builds them (``env=mujoco``), checked against Gymnasium's own env, and a
short SAC run on the real ``HalfCheetah-v5`` with the tuned preset."""

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from analysis import random_scores
from envs import make_env
from envs.mujoco import MuJoCoConfig, known_warning_dropped, mujoco_ids
from tests.conftest import ROOT, run_train


def test_the_v5_tasks_are_offered():
    assert mujoco_ids() == ("Ant-v5", "HalfCheetah-v5", "Hopper-v5", "Humanoid-v5", "HumanoidStandup-v5",
                            "InvertedDoublePendulum-v5", "InvertedPendulum-v5", "Pusher-v5", "Reacher-v5",
                            "Swimmer-v5", "Walker2d-v5")


def test_halfcheetah_spaces_and_check_env():
    env = make_env(MuJoCoConfig(id="HalfCheetah-v5"), seed=0)
    assert env.observation_space.dtype == np.float32 and env.observation_space.shape == (17,)
    assert env.action_space.shape == (6,) and np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (17,)
    with known_warning_dropped():  # check_env copies the env, which compiles the model again
        check_env(env, skip_render_check=True)


def test_same_seed_and_actions_give_gymnasiums_own_observations_and_rewards():
    """The suite's HalfCheetah is Gymnasium's, observations cast to float32 and actions passed through unchanged
    (its bounds are already [-1, 1])."""
    with known_warning_dropped():  # Gymnasium's own env, compiled as the suite compiles it (no MUJOCO_LOG.TXT)
        raw = gym.make("HalfCheetah-v5")
    env = make_env(MuJoCoConfig(), seed=0)
    obs, raw_obs = env.reset(seed=5)[0], raw.reset(seed=5)[0]
    np.testing.assert_array_equal(obs, raw_obs.astype(np.float32))
    for a in np.random.default_rng(0).uniform(-1, 1, (50, 6)).astype(np.float32):
        obs, reward = env.step(a)[:2]
        raw_obs, raw_reward = raw.step(a)[:2]
        np.testing.assert_array_equal(obs, raw_obs.astype(np.float32))
        assert reward == raw_reward


@pytest.mark.parametrize("task, bound", [("InvertedPendulum-v5", 3.0), ("Humanoid-v5", 0.4)])
def test_actions_in_unit_range_reach_the_tasks_bounds(task, bound):
    env = make_env(MuJoCoConfig(id=task), seed=0)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    env.reset(seed=0)
    env.step(np.ones(env.action_space.shape, np.float32))
    np.testing.assert_allclose(env.unwrapped.data.ctrl, bound, rtol=1e-6)


def test_the_time_limit_is_a_truncation_and_a_fall_a_termination():
    env = make_env(MuJoCoConfig(), seed=0)
    env.reset(seed=1)
    steps, total = 0, 0.0
    while True:
        _, reward, terminated, truncated, info = env.step(np.zeros(6, np.float32))
        steps, total = steps + 1, total + reward
        assert not terminated  # HalfCheetah never terminates
        if truncated:
            break
    assert steps == 1000 and info["episode"]["l"] == 1000 and info["episode"]["r"] == pytest.approx(total)
    hopper = make_env(MuJoCoConfig(id="Hopper-v5"), seed=0)
    hopper.reset(seed=1)
    steps = 0
    while True:
        terminated, truncated = hopper.step(np.ones(3, np.float32))[2:4]
        steps += 1
        if terminated or truncated:
            break
    assert terminated and not truncated and steps < 1000  # full torque tips it over: a fall ends the episode


def test_seeding_is_reproducible():
    actions = np.random.default_rng(1).uniform(-1, 1, (30, 6)).astype(np.float32)

    def rollout(env, seed):
        obs = [env.reset(seed=seed)[0]]
        return np.stack(obs + [env.step(a)[0] for a in actions])

    a, b, c = (make_env(MuJoCoConfig(), seed=0) for _ in range(3))
    first = rollout(a, 7)
    np.testing.assert_array_equal(first, rollout(b, 7))
    assert not np.array_equal(first, rollout(c, 8))
    np.testing.assert_array_equal(a.reset()[0], b.reset()[0])  # later resets continue the seeded generator


def test_the_random_policy_table_is_what_its_command_writes():
    """analysis/data/mujoco_random.csv names the command that made it (100 episodes a task), and that command's
    measurement runs through the suite's env: Reacher-v5's 50-step episodes, uniform actions in [-1, 1]."""
    table = (ROOT / "analysis" / "data" / "mujoco_random.csv").read_text().splitlines()
    assert table[:3] == random_scores.header("mujoco", 100, 0)
    assert [line.split(",")[0] for line in table[3:]] == list(mujoco_ids())
    returns = random_scores.random_returns(MuJoCoConfig(id="Reacher-v5"), episodes=3, seed=0)
    assert returns.shape == (3,) and np.all(returns < 0)  # distance and control costs only


def test_making_the_env_prints_nothing_and_writes_no_mujoco_log(tmp_path):
    """Gymnasium's half_cheetah.xml uses ``settotalmass``, which MuJoCo 3.17 reports as deprecated on stdout and in
    ``MUJOCO_LOG.TXT`` in the working directory, at every env made. A fresh process, so the model compiles here."""
    code = "from envs import make_env; from envs.mujoco import MuJoCoConfig; make_env(MuJoCoConfig(), 0).reset(seed=0)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "settotalmass" not in out.stdout + out.stderr
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_a_short_sac_run_on_halfcheetah_with_the_tuned_preset(tmp_path):
    """3,000 agent steps (three 1,000-step episodes, 2,000 updates) with ``conf/tuned/sac_mujoco.yaml``, smaller
    networks and batches: the run completes, its training episodes are HalfCheetah's, and it trains on Dopamine's
    settings."""
    run_dir = tmp_path / "run"
    out = run_train("agent=sac", "env=mujoco", "total_env_steps=3000", "agent.learning_starts=1000",
                    "agent.batch_size=64", "network.hidden_sizes=[32,32]", "torch_threads=1",
                    "eval.every_env_steps=3000", "eval.episodes=1", "checkpoint.every_env_steps=1000",
                    "progress=false", f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 3000 and summary["updates"] == 2000
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    episodes = [r for r in rows if "charts/episodic_return" in r]
    assert [r["step"] for r in episodes] == [1000, 2000, 3000]
    assert all(r["charts/episodic_length"] == 1000 for r in episodes)
    losses = [r["losses/qf1_loss"] for r in rows if "losses/qf1_loss" in r]
    assert losses and np.all(np.isfinite(losses))
    config = (run_dir / "config.yaml").read_text()
    for line in ("reward_scale: 0.1", "target_entropy_per_action_dim: -0.5", "init: xavier", "id: HalfCheetah-v5"):
        assert line in config, line
