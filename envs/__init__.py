"""Environment factory: ``make_env(env_cfg, seed, mode)`` returns a seeded Gymnasium env.

Each suite registers its factory in ``envs/registry.py`` (with the observations it gives and the actions it takes).
Every env returned here records raw episode statistics in ``info["episode"]`` (Gymnasium's
``RecordEpisodeStatistics``), which is what the loop logs; reward clipping for the learner happens in the loop.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.registry import ENVS


def make_env(cfg, seed: int, mode: str = "train", render: bool = False) -> gym.Env:
    """``mode`` is ``train`` or ``eval``: both follow the same protocol, and the caller gives each its own seed,
    which seeds the action space here and must be passed to the first ``reset(seed=...)``. ``render`` makes the env
    with ``render_mode="rgb_array"`` (for videos, ``envs/video.py``); off, nothing renders."""
    env = ENVS.get(cfg.name).target(cfg, render_mode="rgb_array" if render else None)
    env.action_space.seed(seed)
    return env


def frame_stack(cfg) -> int:
    """How many frames each observation holds along its first axis (replay stores each frame once)."""
    return getattr(cfg, "frame_stack", 1)


def slot_sizes(cfg) -> tuple[int, int]:
    """Bytes of one stored frame (what replay keeps per transition) and the action's size (1 for discrete
    actions), without creating an Atari env."""
    if cfg.name == "atari":
        return cfg.screen_size * cfg.screen_size, 1  # uint8 grayscale
    env = make_env(cfg, 0)
    try:
        space = env.observation_space
        frame = int(space.dtype.itemsize * np.prod(space.shape[frame_stack(cfg) > 1:]))
        return frame, int(np.prod(env.action_space.shape))
    finally:
        env.close()
