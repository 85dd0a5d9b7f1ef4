"""Atari preprocessing checked against the real ALE, frame by frame."""

import ale_py
import cv2
import gymnasium as gym
import numpy as np
import pytest

from envs import make_env
from envs.atari import AtariConfig, Profile, make_atari

gym.register_envs(ale_py)


def raw_env(game, sticky):
    return gym.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=sticky, full_action_space=False)


def test_dopamine_protocol_settings():
    env = make_env(AtariConfig(id="Pong"), seed=0)
    ale_kwargs = env.unwrapped.spec.kwargs
    assert ale_kwargs["repeat_action_probability"] == 0.25
    assert ale_kwargs["frameskip"] == 1 and ale_kwargs["full_action_space"] is False
    assert ale_kwargs["max_num_frames_per_episode"] == 27_000 * 4
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert not obs[:3].any() and obs[3].any()  # zero-padded stack at reset, no no-op starts


def test_frames_are_max_pooled_grayscale_resized_and_rewards_summed():
    """Replays the same seed and actions on a bare ALE env and rebuilds each observation by hand."""
    env = make_env(AtariConfig(id="Breakout"), seed=0)
    ref = raw_env("Breakout", 0.25)
    obs, _ = env.reset(seed=123)
    ref.reset(seed=123)
    ale = ref.unwrapped.ale
    rng = np.random.default_rng(0)
    history = [np.zeros((84, 84), np.uint8)] * 3 + [obs[-1]]
    total_reward = 0.0
    for _ in range(60):
        action = int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, _ = env.step(action)
        ref_reward, screens = 0.0, []
        for _ in range(4):
            _, r, *_ = ref.step(action)
            ref_reward += r
            screens.append(ale.getScreenGrayscale())
        pooled = np.maximum(screens[-1], screens[-2])
        expected = cv2.resize(pooled, (84, 84), interpolation=cv2.INTER_AREA)
        history = history[1:] + [expected]
        np.testing.assert_array_equal(obs, np.stack(history))
        assert reward == ref_reward
        total_reward += reward
        if terminated or truncated:
            break
    assert total_reward >= 0


def test_losing_a_life_does_not_end_the_episode():
    env = make_env(AtariConfig(id="Breakout"), seed=0)
    _, info = env.reset(seed=0)
    lives = info["lives"]
    for _ in range(3000):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if info["lives"] < lives:
            assert not terminated
            return
    pytest.fail("no life was lost in 3000 random steps")


def test_nature_profile_signals_life_loss_to_the_learner_only():
    env = make_env(AtariConfig(id="Breakout", profile=Profile.nature), seed=0)
    assert env.unwrapped.spec.kwargs["repeat_action_probability"] == 0.0
    _, info = env.reset(seed=0)
    lives, lost = info["lives"], 0
    for _ in range(5000):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if info["life_lost"]:
            lost += 1
            assert info["lives"] == lives - 1
            assert not terminated or info["lives"] == 0  # the game goes on until the last life
            lives = info["lives"]
        if terminated or truncated:
            break
    assert terminated and lost == 5  # Breakout: five lives, one logged episode


def test_episode_cap_truncates():
    env = make_env(AtariConfig(id="Pong", max_episode_steps=50), seed=0)
    env.reset(seed=0)
    for _ in range(50):
        _, _, terminated, truncated, info = env.step(0)
    assert truncated and not terminated and info["episode"]["l"] == 50


def test_a_mode_and_difficulty_reach_the_ale():
    """Transfer tasks: Breakout's mode 4, difficulty 1 (from ALE's lists for the game) are what the emulator runs."""
    env = make_atari(AtariConfig(id="Breakout", mode=4, difficulty=1))
    try:
        assert (env.unwrapped._game_mode, env.unwrapped._game_difficulty) == (4, 1)
    finally:
        env.close()
