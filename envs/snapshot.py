"""Making an environment resumable without pickling it.

A Gymnasium env is a stack of wrappers (frame skip, max-pooling, frame stack, time limit, episode statistics), each
with private state, around a simulator. Rather than reach into each, the suite restores the simulator's *random*
state from just before the current episode's reset and re-plays that episode's actions through the whole stack.
Every wrapper then rebuilds its own state exactly. The random state is the env's NumPy generator and, for Atari,
the ALE's system state with its RNG (sticky actions); for MinAtar, the game's own generator and its last action
(sticky actions carry across episodes). Re-playing costs at most one episode (27,000 agent steps on Atari, about
20 s); ``resume`` checks the result against the observation saved with the checkpoint.
"""

from __future__ import annotations

from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
import torch


def rng_state(env: gym.Env) -> dict[str, Any]:
    """The env's random state; taken between episodes it fixes everything the next episodes will do."""
    u = env.unwrapped
    state: dict[str, Any] = {"np_random": _generator_state(u.np_random)}
    if hasattr(u, "ale"):
        raw = u.ale.cloneState(include_rng=True).serialize()
        state["ale"] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    game = getattr(u, "game", None)
    if isinstance(getattr(game, "random", None), np.random.RandomState):  # MinAtar keeps its own generator
        state["minatar"] = {"random": _generator_state(game.random), "last_action": int(game.last_action)}
    return state


def _generator_state(rng) -> dict[str, Any]:
    """A ``Generator``'s state, or a legacy ``RandomState``'s (dm_control) with its key as a tensor, so that
    checkpoints load with ``weights_only=True``."""
    if isinstance(rng, np.random.RandomState):
        s = rng.get_state(legacy=False)
        return {**s, "state": {**s["state"], "key": torch.from_numpy(s["state"]["key"].astype(np.int64))}}
    return rng.bit_generator.state


def _set_generator_state(rng, s: dict[str, Any]) -> None:
    if isinstance(rng, np.random.RandomState):
        rng.set_state({**s, "state": {**s["state"], "key": s["state"]["key"].numpy().astype(np.uint32)}})
    else:
        rng.bit_generator.state = s


def set_rng_state(env: gym.Env, state: dict[str, Any]) -> None:
    u = env.unwrapped
    _set_generator_state(u.np_random, state["np_random"])
    if "minatar" in state:  # in place: the game's objects share this generator; sticky actions carry over episodes
        _set_generator_state(u.game.random, state["minatar"]["random"])
        u.game.last_action = state["minatar"]["last_action"]
    if "ale" in state:
        u.ale.restoreState(ale_py.ALEState(state["ale"].numpy().tobytes()))


class EpisodeRecorder(gym.Wrapper):
    """The env as the loop uses it (``core.protocols.ResumableEnv``): it keeps what ``resume`` needs, the env's
    random state before this episode's reset (or the seed of the first reset) and the actions taken since, and
    gives and takes the env's random state between episodes (``rng_state``)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.first_seed: int | None = None
        self.start: dict[str, Any] | None = None
        self.actions: list = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.first_seed, self.start = seed, None if seed is not None else rng_state(self.env)
        self.actions = []
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self.actions.append(action)
        return self.env.step(action)

    def rng_state(self) -> dict[str, Any]:
        return rng_state(self.env)

    def set_rng_state(self, state: dict[str, Any]) -> None:
        set_rng_state(self.env, state)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.first_seed, "start": self.start,
                "actions": torch.as_tensor(np.asarray(self.actions)) if self.actions else None}

    def resume(self, state: dict[str, Any], init_seed: int, expected_obs: np.ndarray) -> np.ndarray:
        """Rebuild the env's state at the checkpoint and return the current observation."""
        self.env.reset(seed=init_seed)  # builds every wrapper's state before the random state is overwritten
        if state["start"] is None:
            obs, _ = self.reset(seed=state["seed"])
        else:
            set_rng_state(self.env, state["start"])
            obs, _ = self.reset()
        for action in ([] if state["actions"] is None else state["actions"].numpy()):
            obs = self.step(action.item() if action.ndim == 0 else action)[0]
        if not np.array_equal(obs, expected_obs):
            raise RuntimeError("re-playing the episode did not reproduce the checkpoint's observation; the "
                               "environment is not deterministic given its random state, so it cannot be resumed")
        return obs
