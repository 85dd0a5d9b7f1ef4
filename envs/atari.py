"""Atari 2600 through ale-py and Gymnasium's own wrappers.

``dopamine`` profile (Machado et al. 2018, as Dopamine and Obando-Ceron et al. 2024): ``ALE/<Game>-v5`` with ALE
frameskip 1 and sticky actions 0.25, then ``AtariPreprocessing`` (frame skip 4 with rewards summed, max over the
last two frames, 84x84 grayscale with INTER_AREA), 4-frame stack zero-padded at reset, no no-op starts, no FIRE
reset, no terminal on life loss, episodes capped at 27,000 agent steps (108k frames).

``nature`` profile (CleanRL's ``dqn_atari.py``, Mnih et al. 2015): no sticky actions, up to 30 no-ops at reset,
FIRE at reset, and a life loss ends the episode for the learner only: the env reports ``info["life_lost"]``, the
loop stores it as a terminal transition, and the game (and its logged return) goes on. Unlike CleanRL it does not
press FIRE after each lost life; the agent has FIRE in its action set.

Rewards are left raw here: the loop clips them for the learner (``env.reward_clip``), so logged returns are game
scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cache

import ale_py
import gymnasium as gym
from ale_py import roms
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, RecordEpisodeStatistics

from core.errors import one_of, require
from core.spaces import ActionKind, ObservationKind
from envs.registry import ENVS


class Profile(str, Enum):
    dopamine = "dopamine"
    nature = "nature"


@dataclass
class AtariConfig:
    name: str = "atari"
    id: str = "Pong"  # ALE game name as in ALE/<id>-v5, e.g. Pong, Breakout, MsPacman
    # dopamine: sticky actions p = 0.25, no life-loss terminal (Machado et al. 2018); nature: no-ops, FIRE reset and
    # life-loss terminals (Mnih et al. 2015, as CleanRL)
    profile: Profile = Profile.dopamine
    frame_skip: int = 4  # emulator frames per agent step (max-pooled over the last two)
    frame_stack: int = 4  # frames stacked into one observation
    screen_size: int = 84  # observation height and width, grayscale
    max_episode_steps: int = 27_000  # agent steps (x frame_skip frames)
    reward_clip: float | None = 1.0  # learner-side clipping to [-c, c]; null keeps raw rewards
    mode: int | None = None  # a game mode from ALE's list for the game (a transfer task); null = the default
    difficulty: int | None = None  # a difficulty from ALE's list for the game; null = the default

    def validate(self) -> None:
        games = atari_games()
        require(self.id in games, "id", self.id, one_of(self.id, games, "allowed ALE games"))
        require(self.frame_skip >= 1, "frame_skip", self.frame_skip, "must be >= 1")
        require(self.frame_stack >= 1, "frame_stack", self.frame_stack, "must be >= 1")
        require(self.screen_size >= 36, "screen_size", self.screen_size, "must be >= 36")
        require(self.max_episode_steps >= 1, "max_episode_steps", self.max_episode_steps, "must be >= 1")
        require(self.reward_clip is None or self.reward_clip > 0, "reward_clip", self.reward_clip,
                "must be > 0 or null")
        if self.mode is not None or self.difficulty is not None:
            modes, difficulties = modes_and_difficulties(self.id)
            require(self.mode is None or self.mode in modes, "mode", self.mode,
                    f"{self.id} has the modes {', '.join(map(str, modes))}")
            require(self.difficulty is None or self.difficulty in difficulties, "difficulty", self.difficulty,
                    f"{self.id} has the difficulties {', '.join(map(str, difficulties))}")


@cache
def atari_games() -> tuple[str, ...]:
    gym.register_envs(ale_py)
    return tuple(sorted(k[4:-3] for k in gym.registry if k.startswith("ALE/") and k.endswith("-v5")))


@cache
def modes_and_difficulties(game: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """ALE's lists for a game (its ROM loaded once, quietly)."""
    gym.register_envs(ale_py)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.loadROM(roms.get_rom_path(gym.spec(f"ALE/{game}-v5").kwargs["game"]))
    return tuple(ale.getAvailableModes()), tuple(ale.getAvailableDifficulties())


class FireReset(gym.Wrapper):
    """Press FIRE once after reset, for games that wait for it (nature profile)."""

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


class LifeLossInfo(gym.Wrapper):
    """Adds ``info["life_lost"]`` so the learner can treat a lost life as terminal without ending the game."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.lives = info["lives"]
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["life_lost"] = info["lives"] < self.lives
        self.lives = info["lives"]
        return obs, reward, terminated, truncated, info


@ENVS.register("atari", config=AtariConfig, observations=ObservationKind.pixels, actions=(ActionKind.discrete,))
def make_atari(cfg: AtariConfig, render_mode: str | None = None) -> gym.Env:
    gym.register_envs(ale_py)
    nature = cfg.profile == Profile.nature
    # AtariPreprocessing reads its frames from ALE itself; the inner env's own observation is thrown away, and a
    # grayscale one costs a third of the RGB one (0.310 -> 0.288 ms per agent step on Pong).
    env = gym.make(f"ALE/{cfg.id}-v5", frameskip=1, repeat_action_probability=0.0 if nature else 0.25,
                   full_action_space=False, obs_type="grayscale",
                   max_num_frames_per_episode=cfg.max_episode_steps * cfg.frame_skip, render_mode=render_mode,
                   **{k: getattr(cfg, k) for k in ("mode", "difficulty") if getattr(cfg, k) is not None})
    env = AtariPreprocessing(env, noop_max=30 if nature else 0, frame_skip=cfg.frame_skip,
                             screen_size=cfg.screen_size, terminal_on_life_loss=False, grayscale_obs=True)
    if nature:
        if "FIRE" in env.unwrapped.get_action_meanings():
            env = FireReset(env)
        env = LifeLossInfo(env)
    env = FrameStackObservation(env, cfg.frame_stack, padding_type="zero")
    return RecordEpisodeStatistics(env)  # raw game score; length in agent steps
