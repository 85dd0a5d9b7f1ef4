"""Videos of episodes: Gymnasium's ``RecordVideo`` (MP4s written by moviepy) on an env made with
``render_mode="rgb_array"``. Atari renders ALE's colour screen, classic control draws with pygame, MinAtar's grid is
upscaled 16×, and dm_control and Gymnasium's MuJoCo tasks render through MuJoCo's OpenGL (``MUJOCO_GL=egl`` or
``osmesa``). The video extra (``pip install -e ".[video]"``) brings moviepy and pygame. An env made without rendering
renders nothing."""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordVideo
from PIL import Image

EXTRA = 'pip install -e ".[video]"'
MUJOCO_RENDERED = {"dmc": "dm_control", "mujoco": "Gymnasium's MuJoCo"}  # env families drawn by MuJoCo's OpenGL


def video_unavailable(env_cfg) -> str | None:
    """Why episodes of this env cannot be filmed on this machine, in one line; None when they can."""
    if importlib.util.find_spec("moviepy") is None:
        return f"videos are written by moviepy, which is not installed (the video extra: {EXTRA})"
    if env_cfg.name == "classic" and importlib.util.find_spec("pygame") is None:
        return f"classic-control envs draw with pygame, which is not installed (the video extra: {EXTRA})"
    if env_cfg.name in MUJOCO_RENDERED and os.environ.get("MUJOCO_GL", "disable") == "disable":
        return (f"{MUJOCO_RENDERED[env_cfg.name]} renders through MuJoCo's OpenGL, which is off here (MUJOCO_GL is "
                "unset or disable); run with MUJOCO_GL=egl (or osmesa) where a GPU or Mesa is present")
    return None


def frames_per_second(env_cfg, env: gym.Env) -> int:
    """About real time: the env's render rate over the frames one agent step skips (Atari's frame skip, dm_control's
    action repeat), rounded to a power of two. moviepy 2.2.1 adds up 1/fps per frame for the clip's duration and then
    steps through it by 1/fps, so at a rate whose inverse is not exact in binary (15, 50) an episode can lose its last
    frame; at a power of two every frame is written."""
    skip = getattr(env_cfg, "frame_skip", 1) * getattr(env_cfg, "action_repeat", 1)
    rate = float(env.metadata.get("render_fps") or 30)
    if env_cfg.name == "dmc":  # Shimmy reports 10 frames/s whatever the task; the task's own control rate
        rate = 1.0 / env.unwrapped._env.control_timestep()
    rate /= skip
    return int(2 ** max(0, round(math.log2(rate))))


def record_episodes(env: gym.Env, folder: Path, episodes: int, fps: float) -> RecordVideo:
    """The first ``episodes`` episodes after the seeding reset (episode 0), as ``eval-episode-<i>.mp4``."""
    with warnings.catch_warnings():  # "overwriting existing videos": the folder is this evaluation's own
        warnings.simplefilter("ignore")
        return RecordVideo(env, str(folder), episode_trigger=lambda i: 1 <= i <= episodes, name_prefix="eval",
                           fps=fps, disable_logger=True)


class EpisodeVideo(RecordVideo):
    """``RecordVideo`` started and stopped by the caller: the training loop films the first episode of each
    evaluation (``eval.video``), from its reset frame to its last step, and keeps the frames for TensorBoard."""

    def __init__(self, env: gym.Env, folder: Path, fps: float):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__init__(env, str(folder), episode_trigger=lambda _: False, fps=fps, disable_logger=True)
        self.last_video: list[np.ndarray] = []

    def start_video(self, name: str) -> None:
        self.start_recording(name)
        self._capture_frame()  # the reset frame, as RecordVideo's own trigger records it

    def finish_video(self) -> None:
        self.last_video = list(self.recorded_frames)
        self.stop_recording()

    def discard_video(self) -> None:
        self.recording, self.recorded_frames = False, []


def read_video(path: Path) -> list[np.ndarray]:
    """The frames of an MP4, decoded by imageio's ffmpeg (moviepy's own dependency)."""
    import imageio.v2 as imageio  # comes with moviepy, an optional extra

    with imageio.get_reader(str(path), "ffmpeg") as reader:
        return [np.asarray(frame) for frame in reader]


def film_strip(video: Path, out: Path, frames: int = 8) -> Path:
    """``frames`` frames evenly spaced over a video, side by side in one PNG (a docs figure)."""
    shots = read_video(video)
    picks = np.linspace(0, len(shots) - 1, min(frames, len(shots))).round().astype(int)
    Image.fromarray(np.concatenate([shots[i] for i in picks], axis=1)).save(out)
    return out
