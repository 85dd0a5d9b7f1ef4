"""MinAtar (Young & Tian 2019): five Atari analogues on a 10x10 grid, the CPU-scale testbed for the scaling study.

Built through the ``minatar`` package's own Gymnasium registration: ``MinAtar/<Game>-v1``, the minimal action set,
or with ``minimal_action_set=false`` ``-v0``, all 6 actions (the MinAtar paper's results used these). The
simulator's defaults are the paper's protocol: sticky actions with probability 0.1 and difficulty ramping; there is
no frame skip (one agent step is one frame) and no episode cap. Observations are 10x10xC booleans; the suite stores
them channels-first as uint8 0/1 (100·C bytes a frame), and ``network=minatar_cnn`` reads them unscaled.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordEpisodeStatistics, TransformObservation

from core.errors import one_of, require
from core.spaces import ActionKind, ObservationKind
from envs.registry import ENVS

GAMES = {"asterix": "Asterix", "breakout": "Breakout", "freeway": "Freeway", "seaquest": "Seaquest",
         "space_invaders": "SpaceInvaders"}


@dataclass
class MinAtarConfig:
    name: str = "minatar"
    id: str = "breakout"  # a MinAtar game: asterix, breakout, freeway, seaquest, space_invaders
    sticky_action_prob: float = 0.1  # MinAtar's sticky actions: the last action repeats with this probability
    difficulty_ramping: bool = True  # MinAtar's difficulty ramping, as the MinAtar paper
    minimal_action_set: bool = True  # the game's own actions (MinAtar-v1); false: all 6 (v0), as the MinAtar paper
    reward_clip: float | None = None  # learner-side clipping to [-c, c]; null keeps raw rewards

    def validate(self) -> None:
        require(self.id in GAMES, "id", self.id, one_of(self.id, GAMES, "allowed MinAtar games"))
        require(0 <= self.sticky_action_prob < 1, "sticky_action_prob", self.sticky_action_prob, "must be in [0, 1)")
        require(self.reward_clip is None or self.reward_clip > 0, "reward_clip", self.reward_clip,
                "must be > 0 or null")


class UpscaledRender(gym.Wrapper):
    """MinAtar renders its 10×10 grid as floats in [0, 1]; a video needs bytes, and a grid large enough to see."""

    SCALE = 16

    def render(self):
        frame = self.env.render()
        frame = np.round(np.asarray(frame) * 255).astype(np.uint8)
        return frame.repeat(self.SCALE, axis=0).repeat(self.SCALE, axis=1)


@ENVS.register("minatar", config=MinAtarConfig, observations=ObservationKind.grid, actions=(ActionKind.discrete,))
def make_minatar(cfg: MinAtarConfig, render_mode: str | None = None) -> gym.Env:
    import minatar.gym  # heavy (it imports seaborn: about 1 s), so only MinAtar runs pay for it

    env_id = f"MinAtar/{GAMES[cfg.id]}-v{1 if cfg.minimal_action_set else 0}"
    if env_id not in gym.registry:
        minatar.gym.register_envs()
    with warnings.catch_warnings():  # v0 is chosen on purpose (all 6 actions): Gymnasium's "out of date" is noise
        warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
        env = gym.make(env_id, sticky_action_prob=cfg.sticky_action_prob, difficulty_ramping=cfg.difficulty_ramping,
                       disable_env_checker=True, render_mode=render_mode)
    if render_mode == "rgb_array":
        env = UpscaledRender(env)
    h, w, c = env.observation_space.shape
    space = gym.spaces.Box(0, 1, (c, h, w), np.uint8)
    env = TransformObservation(env, lambda obs: obs.transpose(2, 0, 1).astype(np.uint8), space)
    return RecordEpisodeStatistics(env)
